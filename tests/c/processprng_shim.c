/* Test-only stand-in for Windows' bcryptprimitives.dll, which Wine 8.0 lacks: Rust's standard
 * library imports ProcessPrng from it (Windows 10 and later ship it). It forwards to
 * BCryptGenRandom, which Wine has. Never shipped: the run under Wine puts it next to the test
 * program only. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
