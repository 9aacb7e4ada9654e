/* MPI-IO on a GovFS mount, for tools/tests/mount.rs: run with 2 or more
 * ranks as `mpi_write DIR`.
 *
 * 1. contig: each rank writes its own 1 MiB block with
 *    MPI_File_write_at_all (collective);
 * 2. strided: the ranks' 4 KiB blocks interleave (a vector file view) and
 *    each writes its blocks with MPI_File_write_at_all (collective
 *    buffering: aggregators write what others sent them);
 * 3. sieved: the same interleaving written independently
 *    (MPI_File_write_at), with data sieving on: each rank reads, patches
 *    and writes back whole stretches holding the others' blocks, under an
 *    fcntl write lock (ROMIO's ADIOI_WRITE_LOCK), so the file is right
 *    only if the locks exclude each other.
 *
 * Rank 0 reads every file back with plain POSIX reads and checks every
 * byte; prints "ok" and exits 0 when all are right. */
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 4096
#define BLOCKS 64
#define CONTIG (1 << 20)

static unsigned char byte_of(int rank, long long at) {
    return (unsigned char)(rank * 37 + at * 7 + 1);
}

static int check(const char *path, int size, int strided) {
    long long total = strided ? (long long)BLOCK * BLOCKS * size : (long long)CONTIG * size;
    unsigned char *buf = malloc(total);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    long long got = 0;
    while (got < total) {
        ssize_t n = pread(fd, buf + got, total - got, got);
        if (n <= 0)
            break;
        got += n;
    }
    close(fd);
    if (got != total) {
        fprintf(stderr, "%s: read %lld of %lld bytes\n", path, got, total);
        return 1;
    }
    for (long long at = 0; at < total; at++) {
        int rank;
        long long k;
        if (strided) {
            rank = (int)((at / BLOCK) % size);
            k = (at / BLOCK / size) * BLOCK + at % BLOCK;
        } else {
            rank = (int)(at / CONTIG);
            k = at % CONTIG;
        }
        if (buf[at] != byte_of(rank, k)) {
            fprintf(stderr, "%s: byte %lld is %d, rank %d wrote %d\n", path, at, buf[at], rank,
                    byte_of(rank, k));
            return 1;
        }
    }
    free(buf);
    return 0;
}

static void fail(int rc, const char *what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len;
        MPI_Error_string(rc, msg, &len);
        fprintf(stderr, "%s: %s\n", what, msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

static void strided(const char *path, int rank, int size, int collective) {
    MPI_Info info;
    MPI_Info_create(&info);
    if (!collective) {
        MPI_Info_set(info, "romio_ds_write", "enable");
        MPI_Info_set(info, "ind_wr_buffer_size", "65536");
    }
    MPI_File fh;
    fail(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, info, &fh), "open");
    MPI_Datatype blocks;
    MPI_Type_vector(BLOCKS, BLOCK, BLOCK * size, MPI_BYTE, &blocks);
    MPI_Type_commit(&blocks);
    fail(MPI_File_set_view(fh, (MPI_Offset)rank * BLOCK, MPI_BYTE, blocks, "native", info), "view");
    unsigned char *buf = malloc(BLOCK * BLOCKS);
    for (long long k = 0; k < BLOCK * BLOCKS; k++)
        buf[k] = byte_of(rank, k);
    MPI_Status st;
    if (collective)
        fail(MPI_File_write_at_all(fh, 0, buf, BLOCK * BLOCKS, MPI_BYTE, &st), "write_at_all");
    else
        fail(MPI_File_write_at(fh, 0, buf, BLOCK * BLOCKS, MPI_BYTE, &st), "write_at");
    fail(MPI_File_close(&fh), "close");
    MPI_Type_free(&blocks);
    MPI_Info_free(&info);
    free(buf);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpi_write DIR\n");
        MPI_Finalize();
        return 2;
    }
    char contig[4096], strid[4096], sieved[4096];
    snprintf(contig, sizeof contig, "%s/contig", argv[1]);
    snprintf(strid, sizeof strid, "%s/strided", argv[1]);
    snprintf(sieved, sizeof sieved, "%s/sieved", argv[1]);

    MPI_File fh;
    fail(MPI_File_open(MPI_COMM_WORLD, contig, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh),
         "open");
    unsigned char *buf = malloc(CONTIG);
    for (long long k = 0; k < CONTIG; k++)
        buf[k] = byte_of(rank, k);
    MPI_Status st;
    fail(MPI_File_write_at_all(fh, (MPI_Offset)rank * CONTIG, buf, CONTIG, MPI_BYTE, &st),
         "write_at_all");
    fail(MPI_File_close(&fh), "close");
    free(buf);

    strided(strid, rank, size, 1);
    strided(sieved, rank, size, 0);

    MPI_Barrier(MPI_COMM_WORLD);
    int bad = 0;
    if (rank == 0) {
        bad = check(contig, size, 0) | check(strid, size, 1) | check(sieved, size, 1);
        if (!bad)
            printf("ok\n");
    }
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return bad;
}
