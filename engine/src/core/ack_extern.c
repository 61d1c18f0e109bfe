/*
 * ack_extern.c - the exported, out-of-line copies of the ACK tracker's
 * inline calls (railgun/ack.h): for C++ callers, which cannot compile
 * the <stdatomic.h> fast paths, and for anyone who takes their address.
 * C callers compile the same bodies inline from railgun/ack_pvt.h.
 */
#define RG__ACK_INLINE RG_EXPORT
#include "railgun/ack.h"
