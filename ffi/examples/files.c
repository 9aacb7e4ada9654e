/* files.c: the GovFS C API's file calls on a running cluster (govfs
 * cluster up --app meta), found through GOVFS_CLUSTER and GOVFS_KEY_FILE:
 * pwrite/pread across chunk boundaries, async writes with completions and
 * the low watermark, region leases side by side, four threads writing
 * through one handle, and the error paths (NULL buffers, bad flags, bad
 * lengths, closed and mixed-up handles).
 *
 *   cc -pthread files.c $(pkg-config --cflags --libs govfs) -o files && ./files
 *
 * Exits 0 when every call answered as expected, 1 otherwise. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "govfs.h"

#define MIB (1024 * 1024)

static int failures = 0;

/* Checks that a call returned `want`; prints the library's message if not. */
static void expect(const char *what, int64_t got, int64_t want) {
    if (got != want) {
        fprintf(stderr, "FAIL %s: got %" PRId64 " want %" PRId64 " (%s)\n", what, got, want,
                govfs_last_error());
        failures++;
    } else {
        printf("ok   %s\n", what);
    }
}

/* Byte `i` of the test data written with `seed`. */
static unsigned char byte_at(uint64_t i, unsigned seed) {
    return (unsigned char)((i * 2654435761u) >> 13) ^ (unsigned char)seed;
}

static void fill(unsigned char *buf, size_t len, uint64_t at, unsigned seed) {
    for (size_t i = 0; i < len; i++) buf[i] = byte_at(at + i, seed);
}

/* The index of the first byte of `buf` that is not the pattern, or -1. */
static int64_t first_bad(const unsigned char *buf, size_t len, uint64_t at, unsigned seed) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != byte_at(at + i, seed)) return (int64_t)i;
    return -1;
}

struct writer {
    uint64_t file;
    int index;
    int64_t rc;
};

/* Threads share one handle: 4 x 256 KiB, each its own quarter of 1 MiB at 8 MiB. */
static void *write_quarter(void *arg) {
    struct writer *w = arg;
    size_t len = 256 * 1024;
    uint64_t at = 8ull * MIB + (uint64_t)w->index * len;
    unsigned char *buf = malloc(len);
    if (buf == NULL) {
        w->rc = -ENOMEM;
        return NULL;
    }
    fill(buf, len, at, 9);
    w->rc = govfs_pwrite(w->file, buf, len, at);
    free(buf);
    return NULL;
}

int main(void) {
    uint64_t fs, f, g;
    govfs_stat_t st;
    int rc = govfs_connect(NULL, NULL, &fs);
    if (rc != 0) {
        fprintf(stderr, "connect: %s (%s)\n", strerror(-rc), govfs_last_error());
        return 1;
    }
    expect("mkdir -p /cfiles", govfs_mkdir_all(fs, "/cfiles", 0755), 0);

    /* Opening: flags and paths checked before anything is sent. */
    expect("open with unknown flag bits", govfs_open(fs, "/cfiles/a", 0x1000, &f), -EINVAL);
    expect("open WRONLY|RDWR", govfs_open(fs, "/cfiles/a", GOVFS_O_WRONLY | GOVFS_O_RDWR, &f),
           -EINVAL);
    expect("open EXCL without CREAT", govfs_open(fs, "/cfiles/a", GOVFS_O_RDWR | GOVFS_O_EXCL, &f),
           -EINVAL);
    expect("open NULL path", govfs_open(fs, NULL, GOVFS_O_RDONLY, &f), -EINVAL);
    expect("open NULL out", govfs_open(fs, "/cfiles/a", GOVFS_O_RDONLY, NULL), -EINVAL);
    expect("open a missing file", govfs_open(fs, "/cfiles/a", GOVFS_O_RDONLY, &f), -ENOENT);
    expect("open a directory", govfs_open(fs, "/cfiles", GOVFS_O_RDONLY, &f), -EISDIR);
    expect("open on a handle never opened",
           govfs_open(fs + 1000, "/cfiles/a", GOVFS_O_RDONLY, &f), -EBADF);
    expect("open RDWR|CREAT|EXCL",
           govfs_open(fs, "/cfiles/a", GOVFS_O_RDWR | GOVFS_O_CREAT | GOVFS_O_EXCL, &f), 0);
    expect("a file handle is not a connection", govfs_mkdir(f, "/x", 0755), -EBADF);
    expect("a connection is not a file", govfs_fsync(fs), -EBADF);

    /* pwrite/pread: 1 MiB + 17 at 3 MiB - 5 crosses the chunk boundary at 4 MiB. */
    size_t big = MIB + 17;
    uint64_t at = 3ull * MIB - 5;
    unsigned char *buf = malloc(big), *back = malloc(big);
    if (buf == NULL || back == NULL) return 1;
    fill(buf, big, at, 1);
    expect("pwrite 1 MiB + 17 across a chunk boundary", govfs_pwrite(f, buf, big, at),
           (int64_t)big);
    memset(back, 0, big);
    expect("pread it back", govfs_pread(f, back, big, at), (int64_t)big);
    expect("every byte", first_bad(back, big, at, 1), -1);
    uint64_t size = 0;
    expect("file_size", govfs_file_size(f, &size), 0);
    expect("size is the end of the write", (int64_t)size, (int64_t)(at + big));
    expect("pread at the end", govfs_pread(f, back, 16, at + big), 0);
    expect("pread across the end", govfs_pread(f, back, 100, at + big - 10), 10);
    memset(back, 0xff, 64);
    expect("pread of a hole", govfs_pread(f, back, 64, 100), 64);
    expect("a hole reads as zeros", back[0] == 0 && back[63] == 0, 1);
    expect("pwrite of 0 bytes", govfs_pwrite(f, buf, 0, 0), 0);

    /* Bad arguments on a good handle. */
    expect("pwrite NULL buf", govfs_pwrite(f, NULL, 10, 0), -EINVAL);
    expect("pread NULL buf", govfs_pread(f, NULL, 10, 0), -EINVAL);
    expect("pwrite with a length past SSIZE_MAX", govfs_pwrite(f, buf, SIZE_MAX, 0), -EINVAL);
    expect("pread past 2^64", govfs_pread(f, back, 10, UINT64_MAX - 3), -EINVAL);
    expect("file_size NULL out", govfs_file_size(f, NULL), -EINVAL);

    /* Async writes: 8 x 64 KiB from 16 MiB. */
    govfs_completion_t done[8];
    size_t n = 99;
    uint64_t low = 0;
    expect("low watermark before any async write", govfs_low_watermark(f, &low), -ENODATA);
    expect("wait with none in flight", govfs_wait_completion(f, &done[0]), -ECHILD);
    expect("poll with none", govfs_poll_completions(f, done, 8, &n), 0);
    expect("poll found none", (int64_t)n, 0);
    size_t piece = 64 * 1024;
    int issued = 1;
    for (uint64_t id = 1; id <= 8; id++) {
        uint64_t off = 16ull * MIB + (id - 1) * piece;
        fill(buf, piece, off, 2);
        if (govfs_write_async(f, id, buf, piece, off) != 0) issued = 0;
        memset(buf, 0, piece); /* the library copied it */
    }
    expect("8 async writes issued", issued, 1);
    expect("an id that does not grow", govfs_write_async(f, 5, buf, piece, 0), -EINVAL);
    expect("async NULL buf", govfs_write_async(f, 9, NULL, piece, 0), -EINVAL);
    expect("async len 0", govfs_write_async(f, 9, buf, 0, 0), -EINVAL);
    expect("poll NULL out", govfs_poll_completions(f, NULL, 8, &n), -EINVAL);
    expect("poll NULL n", govfs_poll_completions(f, done, 8, NULL), -EINVAL);
    expect("wait NULL out", govfs_wait_completion(f, NULL), -EINVAL);
    expect("low watermark NULL out", govfs_low_watermark(f, NULL), -EINVAL);
    /* Collect all 8: polls of at most 3, then waits. */
    int got = 0, good = 1;
    uint64_t seen = 0; /* bit per id */
    for (int round = 0; round < 3 && got < 8; round++) {
        n = 0;
        if (govfs_poll_completions(f, done, 3, &n) != 0 || n > 3) good = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i].status != 0 || done[i].lamport == 0 || done[i].id < 1 || done[i].id > 8)
                good = 0;
            seen |= 1ull << done[i].id;
            got++;
        }
    }
    while (got < 8) {
        govfs_completion_t c;
        int w = govfs_wait_completion(f, &c);
        if (w != 0) {
            fprintf(stderr, "wait: %d (%s)\n", w, govfs_last_error());
            good = 0;
            break;
        }
        if (c.status != 0 || c.lamport == 0) good = 0;
        printf("     async write %" PRIu64 ": status %d, lamport %" PRIu64
               ", earliest uncommitted %" PRIu64 "\n",
               c.id, c.status, c.lamport, c.earliest_uncommitted);
        seen |= 1ull << c.id;
        got++;
    }
    expect("8 completions, each durable with a Lamport time", good && seen == 0x1fe, 1);
    expect("wait after all came", govfs_wait_completion(f, &done[0]), -ECHILD);
    expect("low watermark", govfs_low_watermark(f, &low), 0);
    expect("low watermark is the last id", (int64_t)low, 8);
    expect("in flight", govfs_async_in_flight(f), 0);
    expect("fsync", govfs_fsync(f), 0);

    /* Four threads through the one handle. */
    pthread_t threads[4];
    struct writer writers[4];
    for (int i = 0; i < 4; i++) {
        writers[i] = (struct writer){.file = f, .index = i, .rc = -1};
        pthread_create(&threads[i], NULL, write_quarter, &writers[i]);
    }
    int all = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (writers[i].rc != 256 * 1024) all = 0;
    }
    expect("4 threads wrote through one handle", all, 1);
    expect("close", govfs_close(f), 0);
    expect("pread on a closed file", govfs_pread(f, back, 10, 0), -EBADF);
    expect("close twice", govfs_close(f), -EBADF);

    /* A reader sees it all. */
    expect("open RDONLY", govfs_open(fs, "/cfiles/a", GOVFS_O_RDONLY, &f), 0);
    expect("file_size (reader)", govfs_file_size(f, &size), 0);
    expect("size", (int64_t)size, 16ll * MIB + 8 * (int64_t)piece);
    expect("pread the sync write", govfs_pread(f, back, big, at), (int64_t)big);
    expect("its bytes", first_bad(back, big, at, 1), -1);
    expect("pread the async writes", govfs_pread(f, back, 8 * piece, 16ull * MIB),
           8 * (int64_t)piece);
    expect("their bytes", first_bad(back, 8 * piece, 16ull * MIB, 2), -1);
    expect("pread the threads' MiB", govfs_pread(f, back, MIB, 8ull * MIB), MIB);
    expect("its bytes", first_bad(back, MIB, 8ull * MIB, 9), -1);
    expect("pwrite on a reader", govfs_pwrite(f, buf, 10, 0), -EBADF);
    expect("write_async on a reader", govfs_write_async(f, 1, buf, 10, 0), -EBADF);
    expect("close the reader", govfs_close(f), 0);

    /* WRONLY: reads refused. */
    expect("open WRONLY", govfs_open(fs, "/cfiles/a", GOVFS_O_WRONLY, &f), 0);
    expect("pread on a writer only", govfs_pread(f, back, 10, 0), -EBADF);
    expect("close the writer", govfs_close(f), 0);

    /* Region leases: two writers of disjoint regions hold theirs at once. */
    expect("create /cfiles/rows", govfs_create(fs, "/cfiles/rows", 0644, GOVFS_EXCL, NULL), 1);
    expect("region of length 0", govfs_open_region(fs, "/cfiles/rows", 0, 0, &f), -EINVAL);
    expect("region past 2^64", govfs_open_region(fs, "/cfiles/rows", UINT64_MAX, 2, &f),
           -EINVAL);
    expect("region of a missing file", govfs_open_region(fs, "/cfiles/none", 0, 10, &f),
           -ENOENT);
    expect("open region [0, 64 KiB)", govfs_open_region(fs, "/cfiles/rows", 0, 65536, &f), 0);
    expect("open region [64 KiB, 128 KiB)",
           govfs_open_region(fs, "/cfiles/rows", 65536, 65536, &g), 0);
    fill(buf, 65536, 0, 3);
    expect("write row 0", govfs_pwrite(f, buf, 65536, 0), 65536);
    fill(buf, 65536, 65536, 3);
    expect("write row 1", govfs_pwrite(g, buf, 65536, 65536), 65536);
    expect("a write outside the region is refused", govfs_pwrite(f, buf, 10, 65536) < 0, 1);
    printf("     (the message: %s)\n", govfs_last_error());
    expect("close row 0", govfs_close(f), 0);
    expect("close row 1", govfs_close(g), 0);

    /* A file keeps its connection: disconnect, then still read. */
    expect("open RDONLY", govfs_open(fs, "/cfiles/rows", GOVFS_O_RDONLY, &f), 0);
    expect("disconnect with a file open", govfs_disconnect(fs), 0);
    expect("the connection is closed", govfs_stat(fs, "/cfiles", &st), -EBADF);
    expect("the file still reads", govfs_pread(f, back, 131072, 0), 131072);
    expect("both rows", first_bad(back, 131072, 0, 3), -1);
    expect("close", govfs_close(f), 0);

    free(buf);
    free(back);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("all ok\n");
    return 0;
}
