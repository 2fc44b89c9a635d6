#ifndef SYNCLINE_CSQLITE_SHIM_H
#define SYNCLINE_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
