/* Mamba's selective scan, forward only, float32, for CPUs.
 *
 * Compiled and loaded at run time by biofound_cli/models/scan_kernel.py (see there for
 * why). Channels are scanned LANES at a time, one channel per vector lane, so the sum over
 * states needs no horizontal reduction; one call scans the lane groups [first, last), so
 * several threads can share a call's work. Per channel and step:
 *
 *     delta = softplus(delta + delta_bias)           (if asked)
 *     h[n]  = exp(delta * A[d, n]) * h[n] + delta * u * B[b, g, t, n]
 *     y     = (sum_n C[b, g, t, n] * h[n] + D[d] * u) * silu(z)
 *
 * The state h lives in registers for the whole sequence and every input is read once, so
 * memory traffic is the minimum; the cost is one exponential per state element and step.
 * exp and log are polynomial approximations (Cephes, ~1 ulp) written so that the compiler
 * vectorises them: over the lanes in the step loop, over the steps in the prologue and
 * epilogue of each block of steps.
 */
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* Flush denormal results and inputs to zero while the kernel runs. The vectorised code
 * evaluates both sides of every select, and a side that underflows (a gate divided by
 * e^88, a state times a decay of e^-87) would otherwise cost a microcode assist per lane:
 * ten times the whole scan. Values below 1e-38 do not change any output. */
#define DENORMALS_OFF() unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040)
#define DENORMALS_RESTORE() _mm_setcsr(saved_csr)
#else
#define DENORMALS_OFF() do {} while (0)
#define DENORMALS_RESTORE() do {} while (0)
#endif

#define STEP_BLOCK 64
#ifndef LANES
#define LANES 16
#endif
#define MAX_STATE 64

static inline float bits_to_float(int32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static inline int32_t float_to_bits(float value) {
    int32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

/* e^x; inputs below -87.3 give ~1e-38 instead of a denormal, above 88 give e^88. */
static inline float exp_approx(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    return p * bits_to_float(((int32_t)n + 127) << 23);
}

/* 2^x, for the decays: with A scaled by log2(e) once per channel, the argument needs no
 * Cody-Waite reduction, two operations fewer than exp_approx in the innermost loop. */
static inline float exp2_approx(float x) {
    x = x < -126.0f ? -126.0f : x;
    x = x > 127.0f ? 127.0f : x;
    float n = __builtin_floorf(x + 0.5f);
    float f = x - n;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    return p * bits_to_float(((int32_t)n + 127) << 23);
}

/* ln(x) for normal, positive x. */
static inline float log_approx(float x) {
    int32_t bits = float_to_bits(x);
    float e = (float)((bits >> 23) - 126);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f000000); /* mantissa in [0.5, 1) */
    int below = m < 0.707106781186547524f;
    e = below ? e - 1.0f : e;
    m = below ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    float y = p * m * z;
    y += e * -2.12194440e-4f;
    y -= 0.5f * z;
    return m + y + e * 0.693359375f;
}

/* torch.nn.functional.softplus (beta 1, threshold 20). log1p(w) as log(1 + w) * w / ((1 + w) - 1),
 * which cancels the rounding of 1 + w (Goldberg), so small results keep their relative precision. */
static inline float softplus(float x) {
    float w = exp_approx(x);
    float one_plus = 1.0f + w;
    float small = one_plus - 1.0f;
    /* Both sides computed, then selected: branch-free, so the loop over steps vectorises. */
    float ratio = w / (small == 0.0f ? 1.0f : small);
    float log1p = log_approx(one_plus) * ratio;
    log1p = small == 0.0f ? w : log1p;
    return x > 20.0f ? x : log1p;
}

/* One group of up to LANES channels of one batch row (and one group of B/C), whole sequence. */
static inline void scan_lanes(
    int n_state, int64_t seqlen, int lanes,
    const float *u, const float *delta, const float *z,   /* first channel's row; rows are seqlen apart */
    const float *A, const float *B, const float *C,       /* A: first channel's row; B, C: (seqlen, n_state) */
    const float *delta_bias, int use_softplus, const float *D, float *y
) {
    float h[MAX_STATE][LANES];
    float a[MAX_STATE][LANES]; /* A * log2(e) */
    float dt[LANES][STEP_BLOCK], du[LANES][STEP_BLOCK], acc[LANES][STEP_BLOCK];
    for (int n = 0; n < n_state; ++n) {
        for (int lane = 0; lane < LANES; ++lane) {
            h[n][lane] = 0.0f;
            a[n][lane] = lane < lanes ? A[lane * n_state + n] * 1.44269504088896341f : 0.0f;
        }
    }
    for (int lane = lanes; lane < LANES; ++lane) {
        for (int t = 0; t < STEP_BLOCK; ++t) dt[lane][t] = du[lane][t] = 0.0f;
    }
    for (int64_t start = 0; start < seqlen; start += STEP_BLOCK) {
        int steps = seqlen - start < STEP_BLOCK ? (int)(seqlen - start) : STEP_BLOCK;
        /* Prologue, per channel along its contiguous row. Branches are hoisted out of the
         * loops over steps, so that each loop vectorises. */
        for (int lane = 0; lane < lanes; ++lane) {
            const float *delta_row = delta + lane * seqlen + start, *u_row = u + lane * seqlen + start;
            float bias = delta_bias ? delta_bias[lane] : 0.0f;
            float *dt_row = dt[lane], *du_row = du[lane];
            if (use_softplus) {
                for (int t = 0; t < steps; ++t) dt_row[t] = softplus(delta_row[t] + bias);
            } else {
                for (int t = 0; t < steps; ++t) dt_row[t] = delta_row[t] + bias;
            }
            for (int t = 0; t < steps; ++t) du_row[t] = dt_row[t] * u_row[t];
        }
        /* The recurrence: vectors across channels, the state of every channel kept in h. */
        for (int t = 0; t < steps; ++t) {
            const float *B_t = B + (start + t) * n_state, *C_t = C + (start + t) * n_state;
            float step[LANES], input[LANES], sum[LANES];
            for (int lane = 0; lane < LANES; ++lane) {
                step[lane] = dt[lane][t];
                input[lane] = du[lane][t];
                sum[lane] = 0.0f;
            }
            for (int n = 0; n < n_state; ++n) {
                float b = B_t[n], c = C_t[n];
                for (int lane = 0; lane < LANES; ++lane) {
                    h[n][lane] = exp2_approx(step[lane] * a[n][lane]) * h[n][lane] + input[lane] * b;
                    sum[lane] += c * h[n][lane];
                }
            }
            for (int lane = 0; lane < LANES; ++lane) acc[lane][t] = sum[lane];
        }
        /* Epilogue, per channel: skip connection and gate, then the row of outputs. */
        for (int lane = 0; lane < lanes; ++lane) {
            const float *u_row = u + lane * seqlen + start;
            float *acc_row = acc[lane];
            if (D) {
                float skip = D[lane];
                for (int t = 0; t < steps; ++t) acc_row[t] += skip * u_row[t];
            }
            if (z) {
                const float *z_row = z + lane * seqlen + start;
                for (int t = 0; t < steps; ++t) acc_row[t] *= z_row[t] / (1.0f + exp_approx(-z_row[t]));
            }
            memcpy(y + lane * seqlen + start, acc_row, (size_t)steps * sizeof(float));
        }
    }
}

/* Scan the lane groups [first, last); group k covers channels LANES * (k % groups_per_row) ...
 * of batch row k / groups_per_row, where groups_per_row = ceil(d_inner / LANES).
 *
 * u, delta, z, y: (batch, d_inner, seqlen); A: (d_inner, n_state);
 * B, C: (batch, n_groups, seqlen, n_state); D, delta_bias: (d_inner,).
 * z, D and delta_bias may be NULL. All contiguous float32. Returns 1 for bad sizes.
 */
int biofound_selective_scan_forward(
    int64_t first, int64_t last, int64_t d_inner, int64_t seqlen, int64_t n_state, int64_t n_groups,
    const float *u, const float *delta, const float *A, const float *B, const float *C,
    const float *D, const float *z, const float *delta_bias, int use_softplus, float *y
) {
    if (n_state < 1 || n_state > MAX_STATE || n_groups < 1 || d_inner % n_groups) return 1;
    DENORMALS_OFF();
    int64_t channels_per_group = d_inner / n_groups;
    int64_t groups_per_row = (d_inner + LANES - 1) / LANES;
    for (int64_t group = first; group < last; ++group) {
        int64_t b = group / groups_per_row, d0 = (group % groups_per_row) * LANES;
        int lanes = d_inner - d0 < LANES ? (int)(d_inner - d0) : LANES;
        /* Lanes must share B and C: split a lane group where a B/C group boundary falls. */
        int64_t g = d0 / channels_per_group, g_end = (g + 1) * channels_per_group;
        int first_lanes = d0 + lanes > g_end ? (int)(g_end - d0) : lanes;
        for (int part = 0; part < 2; ++part) {
            int64_t d = part ? d0 + first_lanes : d0;
            int n_lanes = part ? lanes - first_lanes : first_lanes;
            if (n_lanes <= 0) continue;
            int64_t offset = (b * d_inner + d) * seqlen;
            int64_t bc_offset = (b * n_groups + d / channels_per_group) * seqlen * n_state;
            const float *z_part = z ? z + offset : 0;
            const float *bias_part = delta_bias ? delta_bias + d : 0;
            const float *D_part = D ? D + d : 0;
            if (n_state == 16) {
                /* Mamba's default: a constant trip count the compiler unrolls. */
                scan_lanes(16, seqlen, n_lanes, u + offset, delta + offset, z_part, A + d * 16,
                           B + bc_offset, C + bc_offset, bias_part, use_softplus, D_part, y + offset);
            } else {
                scan_lanes((int)n_state, seqlen, n_lanes, u + offset, delta + offset, z_part,
                           A + d * n_state, B + bc_offset, C + bc_offset, bias_part, use_softplus, D_part,
                           y + offset);
            }
        }
    }
    DENORMALS_RESTORE();
    return 0;
}
