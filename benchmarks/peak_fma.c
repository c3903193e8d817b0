/* Peak FMA and VNNI throughput of one x86-64 core, and its running clock: the facts behind the
 * compute floor of `actionnet-edge bench` (docs/benchmarks.md, "Compute floor").
 *
 *   cc -O2 -mavx512f -mavx512vnni -mfma benchmarks/peak_fma.c -o /tmp/peak_fma && /tmp/peak_fma
 *
 * Twelve independent accumulator chains hide the FMA latency, so the loop runs at the units'
 * throughput; instructions per cycle = instructions per ns / clock (GHz).
 */
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static double clock_ghz(void) {  /* one dependent add per cycle */
  long n = 400000000L, x = 0;
  double t0 = now();
  __asm__ volatile("mov %1, %%rcx\n1:\n add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n sub $1, %%rcx\n jnz 1b\n"
                   : "+r"(x) : "r"(n / 4) : "rcx");
  return n / (now() - t0) / 1e9;
}

#define CHAINS(T, SET, OP, ...) T a0 = SET(1), a1 = SET(2), a2 = SET(3), a3 = SET(4), a4 = SET(5), a5 = SET(6), \
  a6 = SET(7), a7 = SET(8), a8 = SET(9), a9 = SET(10), a10 = SET(11), a11 = SET(12);                         \
  double t0 = now();                                                                                         \
  for (long k = 0; k < it; k++) {                                                                            \
    a0 = OP(a0, __VA_ARGS__); a1 = OP(a1, __VA_ARGS__); a2 = OP(a2, __VA_ARGS__); a3 = OP(a3, __VA_ARGS__);   \
    a4 = OP(a4, __VA_ARGS__); a5 = OP(a5, __VA_ARGS__); a6 = OP(a6, __VA_ARGS__); a7 = OP(a7, __VA_ARGS__);   \
    a8 = OP(a8, __VA_ARGS__); a9 = OP(a9, __VA_ARGS__); a10 = OP(a10, __VA_ARGS__); a11 = OP(a11, __VA_ARGS__); \
  }                                                                                                          \
  double per_ns = it * 12 / (now() - t0) / 1e9;                                                              \
  T all[12] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};                                            \
  for (int j = 0; j < 12; j++) { float sink; memcpy(&sink, &all[j], sizeof sink); total += sink; }

int main(void) {
  const long it = 200000000L;
  float total = 0;
  double ghz = clock_ghz();
  printf("clock: %.3f GHz (dependent-add chain)\n", ghz);
  { __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, m, c)
    printf("512-bit FMA: %.2f per cycle, %.1f fp32 FMA/cycle\n", per_ns / ghz, per_ns / ghz * 16); }
  { __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, m, c)
    printf("256-bit FMA: %.2f per cycle, %.1f fp32 FMA/cycle\n", per_ns / ghz, per_ns / ghz * 8); }
  { __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(2);
    CHAINS(__m512i, _mm512_set1_epi32, _mm512_dpbusd_epi32, x, y)
    printf("512-bit VNNI vpdpbusd: %.2f per cycle, %.1f int8 MAC/cycle\n", per_ns / ghz, per_ns / ghz * 64); }
  printf("(checksum %g)\n", total);
  return 0;
}
