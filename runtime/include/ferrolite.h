/* Ferrolite runtime: C interface (static library libferrolite.a, or libferrolite.so).
 *
 * Open a .flb bundle, run it on an image or a tensor, read the first output. Functions that
 * can fail return NULL or -1 and leave a message for ferrolite_last_error() (per thread).
 * A model is not thread-safe: use one per thread. A model runs on one thread per big core by
 * default, each pinned to a core of its own (the calling thread included: it is pinned to the
 * fastest core when it first runs the model); ferrolite_open_with_options sets the threads,
 * the CPUs and whether to pin.
 */
#ifndef FERROLITE_H
#define FERROLITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct FerroliteModel FerroliteModel;

/* Message of the last failed call on this thread ("" if none). */
const char *ferrolite_last_error(void);

/* How a model runs. Zero-initialised fields mean: default threads, default CPUs, no pinning;
 * set pin to 1 for the default pinning. */
typedef struct {
    int32_t threads;  /* threads in all, the caller included; 0 = default (one per big core) */
    const char *cpus; /* NULL = default (the big cores), else a Linux CPU list such as "0-3" */
    int32_t pin;      /* 1 (default) = pin each thread, the caller included, to a CPU of its own; 0 = don't */
} FerroliteOptions;

/* Open and validate a bundle (memory-mapped) with the default options; NULL on error. */
FerroliteModel *ferrolite_open(const char *path);

/* Open a bundle with options (NULL = the defaults); NULL on error (negative threads, a bad
 * CPU list, a CPU that is not online...). */
FerroliteModel *ferrolite_open_with_options(const char *path, const FerroliteOptions *opts);

/* Open a bundle held in memory (len bytes at data), validated and copied: data may be freed
 * on return. opts as for ferrolite_open_with_options (NULL = the defaults). NULL on error. */
FerroliteModel *ferrolite_open_bytes(const uint8_t *data, size_t len, const FerroliteOptions *opts);

/* Free a model (NULL is ignored). */
void ferrolite_close(FerroliteModel *model);

/* Kernel tier in use: "neon", "avx2", "avx512" or "scalar". */
const char *ferrolite_isa(const FerroliteModel *model);

/* Threads a run uses, the caller included (0 for NULL). */
int32_t ferrolite_threads(const FerroliteModel *model);

/* Number of float values of the first input and of the first output. */
size_t ferrolite_input_len(const FerroliteModel *model);
size_t ferrolite_output_len(const FerroliteModel *model);

/* Class name of an output index, or NULL when the bundle has none. */
const char *ferrolite_label(const FerroliteModel *model, size_t index);

/* Run on a float tensor already in the model's input layout. 0 on success, -1 on error. */
int32_t ferrolite_run(FerroliteModel *model, const float *input, size_t input_len,
                      float *output, size_t output_len);

/* Preprocess an 8-bit RGB image (row-major, width*height*3 bytes) with the bundle's own
 * recipe (resize, crop, mean/std), run, and write the first output. 0 on success, -1 on
 * error. */
int32_t ferrolite_classify_rgb(FerroliteModel *model, const uint8_t *rgb, size_t width,
                               size_t height, float *output, size_t output_len);

#ifdef __cplusplus
}
#endif

#endif /* FERROLITE_H */
