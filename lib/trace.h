/*
 * Tracing for -v/-vv: the library never prints, so it hands trace lines to a hook that the
 * command line installs. Callers mask secrets and patient data before a line gets here.
 */
#ifndef PL_TRACE_H
#define PL_TRACE_H

typedef void (*pl_trace_fn)(int level, const char *line, void *arg);

/* Install the hook and the highest level it wants (0 turns tracing off). */
void pl_trace_set(pl_trace_fn fn, void *arg, int level);

/* Whether a line at this level would be shown: skip the work of building it if not. */
int pl_trace_on(int level);

void pl_trace(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Mask the password of a libpq connection string or URI, for messages and traces. */
char *pl_trace_mask_conninfo(const char *conninfo);

#endif
