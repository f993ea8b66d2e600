/*
 * bcryptprimitives.dll for the Wine tier (scripts/wine-tests): Go >= 1.22
 * programs on Windows refuse to start without bcryptprimitives.dll's
 * ProcessPrng, which Debian 12's Wine 8.0 lacks. This is ProcessPrng and
 * nothing else, on top of RtlGenRandom (advapi32's SystemFunction036), which
 * Wine has. Built with Debian's gcc-mingw-w64 into the test prefix's
 * system32; never shipped.
 */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!RtlGenRandom(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}

BOOL WINAPI DllEntry(HINSTANCE h, DWORD reason, LPVOID reserved)
{
	(void)h;
	(void)reason;
	(void)reserved;
	return TRUE;
}
