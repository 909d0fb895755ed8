/* Ferrolite runtime: C interface (static library libferrolite.a, or libferrolite.so).
 *
 * Open a .flb bundle, run it on an image or a tensor, read the first output. Functions that
 * can fail return NULL or -1 and leave a message for ferrolite_last_error() (per thread).
 * A model is not thread-safe: use one per thread.
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

/* Open and validate a bundle (memory-mapped); NULL on error. */
FerroliteModel *ferrolite_open(const char *path);

/* Free a model (NULL is ignored). */
void ferrolite_close(FerroliteModel *model);

/* Kernel tier in use: "neon", "avx2", "avx512" or "scalar". */
const char *ferrolite_isa(const FerroliteModel *model);

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
