#ifndef SYNCLINE_CLEVELDB_SHIM_H
#define SYNCLINE_CLEVELDB_SHIM_H
#include <leveldb/c.h>
#endif
