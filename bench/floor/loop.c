/*
 * The floor of `-l -d 31` / `-c -d 31` in C (bench/floor.ts): loop.c IN OFFSETS OUT [lzo|zlib].
 *
 * Maps IN whole (MADV_RANDOM: a fault reads no more than its page, as vmsift's window) and, for each page
 * whose file offset OFFSETS lists (float64, the pages makedumpfile's output keeps), tests it for zeros
 * (memcmp) and compresses the others with makedumpfile's call, liblzo2's lzo1x_1_compress or libz's
 * compress2 at level 1 (raw when it does not shrink), appending the results to a 1 MiB buffer written with
 * write(). Nothing else: no headers, no bitmaps, no page descriptors, no memory model, no scan.
 * What is left of any tool's run after its filtering is at least this.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* liblzo2's and libz's ABI (Debian ships no headers without liblzo2-dev, zlib1g-dev) */
int __lzo_init_v2(unsigned, int, int, int, int, int, int, int, int, int);
int lzo1x_1_compress(const unsigned char *, unsigned long, unsigned char *, unsigned long *, void *);
int compress2(unsigned char *, unsigned long *, const unsigned char *, unsigned long, int);

#define PAGE 4096
#define CHUNK (1 << 20)

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: loop IN OFFSETS OUT [lzo|zlib]\n");
    return 2;
  }
  int zlib = argc == 5 && strcmp(argv[4], "zlib") == 0;
  /* compress2 allocates and frees ~270 KiB per call: keep glibc from mapping, trimming and faulting it in
   * again every page (2x the CPU time of the loop otherwise; the Deno process's heap already behaves so) */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  int in = open(argv[1], O_RDONLY);
  struct stat st;
  if (in < 0 || fstat(in, &st) != 0) return perror(argv[1]), 1;
  const unsigned char *m = mmap(0, st.st_size, PROT_READ, MAP_SHARED, in, 0);
  if (m == MAP_FAILED) return perror("mmap"), 1;
  madvise((void *)m, st.st_size, MADV_RANDOM);
  int of = open(argv[2], O_RDONLY);
  struct stat so;
  if (of < 0 || fstat(of, &so) != 0) return perror(argv[2]), 1;
  double *offs = malloc(so.st_size);
  if (read(of, offs, so.st_size) != so.st_size) return perror(argv[2]), 1;
  long n = so.st_size / 8;
  int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (out < 0) return perror(argv[3]), 1;
  if (__lzo_init_v2(2, sizeof(short), sizeof(int), sizeof(long), sizeof(unsigned int), sizeof(unsigned long),
                    sizeof(char *), sizeof(char *), sizeof(void *), -1) != 0)
    return fprintf(stderr, "lzo init failed\n"), 1;
  static unsigned char zero[PAGE], buf[CHUNK + 2 * PAGE], wrk[1 << 17];
  long used = 0, nonzero = 0;
  for (long i = 0; i < n; i++) {
    const unsigned char *p = m + (long)offs[i];
    if (memcmp(p, zero, PAGE) == 0) continue;
    nonzero++;
    unsigned long len = 2 * PAGE;
    int rc = zlib ? compress2(buf + used, &len, p, PAGE, 1) : lzo1x_1_compress(p, PAGE, buf + used, &len, wrk);
    if (rc != 0) len = PAGE;
    if (len >= PAGE) {
      memcpy(buf + used, p, PAGE);
      len = PAGE;
    }
    used += len;
    if (used >= CHUNK) {
      if (write(out, buf, used) != used) return perror(argv[3]), 1;
      used = 0;
    }
  }
  if (write(out, buf, used) != used || close(out) != 0) return perror(argv[3]), 1;
  printf("%ld pages, %ld not zero\n", n, nonzero);
  return 0;
}
