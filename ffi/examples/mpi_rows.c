/* mpi_rows.c: MPI ranks writing one shared GovFS file (N-1), each its own
 * rows under a region lease, and rank 0 verifying every byte; or, for
 * comparison, each rank writing a file of its own (file per process).
 * Finds the cluster through GOVFS_CLUSTER and GOVFS_KEY_FILE.
 *
 *   mpicc -std=c11 mpi_rows.c $(pkg-config --cflags --libs govfs) -o mpi_rows
 *   mpirun -np 2 -x GOVFS_CLUSTER -x GOVFS_KEY_FILE ./mpi_rows [MODE [ROWS [ROW_SIZE [REPS]]]]
 *
 * MODE:
 *   shared  (default) rank 0 creates /mpi/rows; rank r opens the region
 *           [r * ROWS * ROW_SIZE, (r + 1) * ROWS * ROW_SIZE) and writes its
 *           ROWS rows of ROW_SIZE bytes with govfs_pwrite, closes; after a
 *           barrier rank 0 reads the whole file back and checks every byte.
 *   fpp     rank r writes the same rows to /mpi/rank-<r> under a lease on
 *           the whole file; rank 0 checks every file.
 *   bench   REPS rounds of fpp then shared, each checked; prints the median
 *           bandwidth of each and their ratio (shared / fpp).
 * ROWS per rank defaults to 64, ROW_SIZE to 65536 bytes, REPS to 3.
 * Bandwidth is all ranks' bytes over the time from the first rank's open to
 * the last rank's close (MPI_Wtime), in MiB/s.
 *
 * Prints "OK ..." on rank 0 and exits 0 when every byte was read back as
 * written; a failure on any rank aborts the job with exit code 1. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "govfs.h"

#define DIR "/mpi"
#define SHARED DIR "/rows"
#define MIB (1024.0 * 1024.0)

static int rank, nranks;

/* Prints what failed with the library's message and ends the whole job. */
static void die(const char *what, int64_t rc) {
    fprintf(stderr, "rank %d: %s: %s (%s)\n", rank, what, rc < 0 ? strerror((int)-rc) : "failed",
            govfs_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static void check(const char *what, int64_t rc) {
    if (rc < 0) die(what, rc);
}

/* Byte `i` of row `row` written by rank `r`. */
static unsigned char pattern(int r, uint64_t row, uint64_t i) {
    return (unsigned char)(i ^ (i >> 8) ^ (row * 37) ^ ((uint64_t)r * 101 + 1));
}

static void fill_row(unsigned char *buf, size_t row_size, int r, uint64_t row) {
    for (size_t i = 0; i < row_size; i++) buf[i] = pattern(r, row, i);
}

/* Rank 0: (re)creates `path`, empty. */
static void fresh_file(uint64_t fs, const char *path) {
    int rc = govfs_unlink(fs, path);
    if (rc != 0 && rc != -ENOENT) die("unlink", rc);
    check("create", govfs_create(fs, path, 0644, GOVFS_EXCL, NULL));
}

/* Writes this rank's rows: `rows` rows of `row_size` bytes from `base`.
 * `shared`: a region lease on them in the one file; otherwise a file of
 * its own. Returns when the file is closed (size reported). */
static void write_rows(uint64_t fs, int shared, uint64_t rows, size_t row_size,
                       unsigned char *buf) {
    uint64_t f;
    char path[64];
    uint64_t bytes = rows * row_size;
    uint64_t base = shared ? (uint64_t)rank * bytes : 0;
    if (shared) {
        check("open_region", govfs_open_region(fs, SHARED, base, bytes, &f));
    } else {
        snprintf(path, sizeof path, DIR "/rank-%d", rank);
        check("open", govfs_open(fs, path, GOVFS_O_WRONLY, &f));
    }
    for (uint64_t row = 0; row < rows; row++) {
        fill_row(buf, row_size, rank, row);
        int64_t n = govfs_pwrite(f, buf, row_size, base + row * row_size);
        if (n != (int64_t)row_size) die("pwrite", n < 0 ? n : -EIO);
    }
    check("close", govfs_close(f));
}

/* Rank 0: reads `path` back and checks rank `r`'s rows at `base` (or, with
 * r < 0, every rank's rows in order from 0). Returns the bytes checked. */
static uint64_t verify(uint64_t fs, const char *path, int r, uint64_t rows, size_t row_size,
                       unsigned char *buf) {
    uint64_t f, size = 0;
    int first = r < 0 ? 0 : r, last = r < 0 ? nranks - 1 : r;
    uint64_t want = (uint64_t)(last - first + 1) * rows * row_size;
    check("open for reading", govfs_open(fs, path, GOVFS_O_RDONLY, &f));
    check("file_size", govfs_file_size(f, &size));
    if (size != want) {
        fprintf(stderr, "%s: size %" PRIu64 ", want %" PRIu64 "\n", path, size, want);
        die("verify", -EIO);
    }
    uint64_t at = 0;
    for (int k = first; k <= last; k++) {
        for (uint64_t row = 0; row < rows; row++, at += row_size) {
            int64_t n = govfs_pread(f, buf, row_size, at);
            if (n != (int64_t)row_size) die("pread", n < 0 ? n : -EIO);
            for (size_t i = 0; i < row_size; i++) {
                if (buf[i] != pattern(k, row, i)) {
                    fprintf(stderr,
                            "%s: byte %" PRIu64 " (rank %d, row %" PRIu64 ", offset %zu) is %u, "
                            "want %u\n",
                            path, at + i, k, row, i, buf[i], pattern(k, row, i));
                    die("verify", -EIO);
                }
            }
        }
    }
    check("close the reader", govfs_close(f));
    return want;
}

/* One round in one mode: set up, time the writes, check. Returns MiB/s. */
static double round_of(uint64_t fs, int shared, uint64_t rows, size_t row_size,
                       unsigned char *buf) {
    char path[64];
    if (shared) {
        if (rank == 0) fresh_file(fs, SHARED);
    } else {
        snprintf(path, sizeof path, DIR "/rank-%d", rank);
        fresh_file(fs, path);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    write_rows(fs, shared, rows, row_size, buf);
    double end = MPI_Wtime();
    double first_start, last_end;
    MPI_Reduce(&start, &first_start, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&end, &last_end, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double total = (double)nranks * (double)rows * (double)row_size;
    double mibs = 0;
    if (rank == 0) {
        uint64_t checked = 0;
        if (shared) {
            checked = verify(fs, SHARED, -1, rows, row_size, buf);
        } else {
            for (int k = 0; k < nranks; k++) {
                snprintf(path, sizeof path, DIR "/rank-%d", k);
                checked += verify(fs, path, k, rows, row_size, buf);
            }
        }
        mibs = total / MIB / (last_end - first_start);
        printf("%-6s %d ranks x %" PRIu64 " rows x %zu B: %.1f MiB in %.3f s: %.1f MiB/s, "
               "%" PRIu64 " bytes verified\n",
               shared ? "shared" : "fpp", nranks, rows, row_size, total / MIB,
               last_end - first_start, mibs, checked);
        fflush(stdout);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    return mibs;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    const char *mode = argc > 1 ? argv[1] : "shared";
    uint64_t rows = argc > 2 ? strtoull(argv[2], NULL, 10) : 64;
    size_t row_size = argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : 65536;
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    int shared = strcmp(mode, "shared") == 0, fpp = strcmp(mode, "fpp") == 0,
        bench = strcmp(mode, "bench") == 0;
    if (!(shared || fpp || bench) || rows == 0 || row_size == 0 || reps < 1 || reps > 100) {
        if (rank == 0)
            fprintf(stderr, "usage: %s [shared|fpp|bench [ROWS [ROW_SIZE [REPS]]]]\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    unsigned char *buf = malloc(row_size);
    if (buf == NULL) die("malloc", -ENOMEM);

    uint64_t fs;
    check("connect", govfs_connect(NULL, NULL, &fs));
    if (rank == 0) check("mkdir -p " DIR, govfs_mkdir_all(fs, DIR, 0755));
    MPI_Barrier(MPI_COMM_WORLD);

    if (!bench) {
        round_of(fs, shared, rows, row_size, buf);
        if (rank == 0) printf("OK: %s, %d ranks, every byte verified\n", mode, nranks);
    } else {
        double fpp_mibs[100], shared_mibs[100];
        for (int k = 0; k < reps; k++) {
            fpp_mibs[k] = round_of(fs, 0, rows, row_size, buf);
            shared_mibs[k] = round_of(fs, 1, rows, row_size, buf);
        }
        if (rank == 0) {
            double f = median(fpp_mibs, reps), s = median(shared_mibs, reps);
            printf("median of %d: fpp %.1f MiB/s, shared (region leases) %.1f MiB/s\n", reps, f,
                   s);
            printf("ratio shared/fpp: %.2f\n", s / f);
            printf("OK: bench, %d ranks, every byte verified\n", nranks);
        }
    }
    check("disconnect", govfs_disconnect(fs));
    free(buf);
    MPI_Finalize();
    return 0;
}
