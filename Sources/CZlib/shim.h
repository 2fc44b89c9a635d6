#ifndef SYNCLINE_CZLIB_SHIM_H
#define SYNCLINE_CZLIB_SHIM_H
#include <zlib.h>

/* deflateInit/inflateInit are macros; these wrappers make them callable from Swift. */
static inline int syncline_deflateInit(z_streamp stream, int level) {
    return deflateInit(stream, level);
}
static inline int syncline_inflateInit(z_streamp stream) {
    return inflateInit(stream);
}
#endif
