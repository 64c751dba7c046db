/* check.h - minimal assertion helpers for the CTest programs.
 * A test exits 0 on success, 1 on failure, 77 when skipped (CTest's
 * SKIP_RETURN_CODE is set to 77 for tests that may skip). */
#ifndef UNET_TEST_CHECK_H
#define UNET_TEST_CHECK_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
      check_failures++;                                                             \
    }                                                                               \
  } while (0)

#define CHECK_MSG(cond, ...)                                                        \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fputc('\n', stderr);                                                          \
      check_failures++;                                                             \
    }                                                                               \
  } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                        \
  do {                                                                                       \
    double ca_ = (a), cb_ = (b);                                                             \
    if (!(fabs(ca_ - cb_) <= (atol) + (rtol)*fabs(cb_))) {                                   \
      fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.9g, %s = %.9g\n", __FILE__, __LINE__, \
              #a, ca_, #b, cb_);                                                             \
      check_failures++;                                                                      \
    }                                                                                        \
  } while (0)

#define CHECK_DONE()                                                                \
  do {                                                                              \
    if (check_failures) {                                                           \
      fprintf(stderr, "%d check(s) failed\n", check_failures);                      \
      return 1;                                                                     \
    }                                                                               \
    printf("all checks passed\n");                                                  \
    return 0;                                                                       \
  } while (0)

#define SKIP(...)                                                                   \
  do {                                                                              \
    printf("SKIP: ");                                                               \
    printf(__VA_ARGS__);                                                            \
    printf("\n");                                                                   \
    return 77;                                                                      \
  } while (0)

#endif
