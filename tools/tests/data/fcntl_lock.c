/* POSIX byte-range locks from the command line, for tools/tests/mount.rs.
 *
 *   fcntl_lock hold FILE START LEN MS   F_SETLK a write lock, print "locked",
 *                                       write the region, hold MS ms, print
 *                                       "releasing", close (which unlocks)
 *   fcntl_lock try FILE START LEN       F_SETLK a write lock: exit 0 if granted,
 *                                       11 if refused (EAGAIN or EACCES)
 *   fcntl_lock getlk FILE START LEN     F_GETLK a write lock: print "unlocked" or
 *                                       "locked by PID type T"
 *   fcntl_lock wait FILE START LEN      F_SETLKW a write lock: print the ms waited
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static struct flock region(short type, long long start, long long len) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fl;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s hold|try|getlk|wait FILE START LEN [MS]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    long long start = atoll(argv[3]), len = atoll(argv[4]);
    int fd = open(argv[2], O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    struct flock fl = region(F_WRLCK, start, len);
    if (strcmp(mode, "hold") == 0) {
        if (argc < 6 || fcntl(fd, F_SETLK, &fl) != 0) {
            perror("F_SETLK");
            return 1;
        }
        printf("locked\n");
        fflush(stdout);
        char *buf = malloc(len);
        memset(buf, 'A', len);
        if (pwrite(fd, buf, len, start) != len) {
            perror("pwrite");
            return 1;
        }
        usleep(atoll(argv[5]) * 1000);
        printf("releasing\n");
        fflush(stdout);
        close(fd);
        return 0;
    }
    if (strcmp(mode, "try") == 0) {
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return 0;
        if (errno == EAGAIN || errno == EACCES)
            return 11;
        perror("F_SETLK");
        return 1;
    }
    if (strcmp(mode, "getlk") == 0) {
        if (fcntl(fd, F_GETLK, &fl) != 0) {
            perror("F_GETLK");
            return 1;
        }
        if (fl.l_type == F_UNLCK)
            printf("unlocked\n");
        else
            printf("locked by %d type %s\n", (int)fl.l_pid, fl.l_type == F_WRLCK ? "write" : "read");
        return 0;
    }
    if (strcmp(mode, "wait") == 0) {
        long long t0 = now_ms();
        if (fcntl(fd, F_SETLKW, &fl) != 0) {
            perror("F_SETLKW");
            return 1;
        }
        printf("%lld\n", now_ms() - t0);
        close(fd);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
