/*
 * zipf.c - rejection-inversion Zipf sampling (see zipf.h).
 *
 * With h(x) = x^-s and H its antiderivative (shifted so H stays accurate
 * near s = 1), a sample draws u uniformly between H(n + 1/2) and
 * H(3/2) - 1, inverts it to x, rounds to k and accepts k when u lies under
 * the step for k. The acceptance rate is above 90% for every s, so the
 * expected cost is a couple of exp/log calls.
 */
#include <math.h>
#include "zipf.h"

void rg_rng_seed(rg_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

/* log1p(x) / x, continuous at 0 */
static double helper1(double x)
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x / 3.0);
}

/* expm1(x) / x, continuous at 0 */
static double helper2(double x)
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x / 3.0);
}

static double big_h(const rg_zipf_t *z, double x)
{
    double lx = log(x);
    return helper2((1 - z->s) * lx) * lx;
}

static double small_h(const rg_zipf_t *z, double x)
{
    return exp(-z->s * log(x));
}

static double big_h_inv(const rg_zipf_t *z, double x)
{
    double t = x * (1 - z->s);
    if (t < -1)
        t = -1;
    return exp(helper1(t) * x);
}

void rg_zipf_init(rg_zipf_t *z, uint64_t n, double s)
{
    z->n = n < 1 ? 1 : n;
    z->s = s;
    z->h_x1 = big_h(z, 1.5) - 1;
    z->h_n = big_h(z, (double)z->n + 0.5);
    z->cut = 2 - big_h_inv(z, big_h(z, 2.5) - small_h(z, 2));
}

uint64_t rg_zipf_next(const rg_zipf_t *z, rg_rng_t *r)
{
    if (z->s == 0)
        return 1 + rg_rng_below(r, z->n);
    for (;;) {
        double u = z->h_n + rg_rng_double(r) * (z->h_x1 - z->h_n);
        double x = big_h_inv(z, u);
        double kd = floor(x + 0.5);
        if (kd < 1)
            kd = 1;
        else if (kd > (double)z->n)
            kd = (double)z->n;
        if (kd - x <= z->cut || u >= big_h(z, kd + 0.5) - small_h(z, kd))
            return (uint64_t)kd;
    }
}
