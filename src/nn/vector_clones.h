/* vector_clones.h - private to src/nn: VECTOR_CLONES marks a hot loop that
 * GCC compiles twice on x86-64, for the baseline (SSE2) the build targets and
 * for x86-64-v3 (AVX2), the copy picked at load time by the CPU. The build is
 * ISO C11, so GCC does not contract a*b+c into FMAs: both copies compute the
 * same bits. Other compilers and targets get the plain function. */
#ifndef UNET_NN_VECTOR_CLONES_H
#define UNET_NN_VECTOR_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif

#endif
