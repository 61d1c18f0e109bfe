/*
 * export.h - symbol visibility for the railgun library.
 *
 * The library is built with -fvisibility=hidden; only declarations marked
 * RG_EXPORT are part of the ABI. RG_BUILDING is defined while compiling the
 * library itself.
 */
#ifndef RAILGUN_EXPORT_H
#define RAILGUN_EXPORT_H

#if defined(_WIN32)
#  if defined(RG_BUILDING)
#    define RG_EXPORT __declspec(dllexport)
#  else
#    define RG_EXPORT
#  endif
#elif defined(__GNUC__)
#  define RG_EXPORT __attribute__((visibility("default")))
#else
#  define RG_EXPORT
#endif

#endif /* RAILGUN_EXPORT_H */
