/* The checkpoint container and codecs: byte buffers and cursors, container round trip and
 * forward compatibility, atomic writes (incl. ulimit -f and a missing directory), the
 * shuffle + zlib tensor codec, fp16/bf16 conversion, and a matrix of damaged files (every
 * truncation, a bit flip in every byte, wrong magic/version, absurd sizes): each must give a
 * clear error and never crash (run under ASan/UBSan too). */
#include "ckpt_testutil.h"
#include "dprune/ckpt_file.h"
#include "testutil.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bytes_cursor(void) {
    dp_bytes b = {0};
    dp_bytes_u8(&b, 0xab);
    dp_bytes_u32(&b, 0xdeadbeef);
    dp_bytes_i64(&b, -5);
    dp_bytes_f64(&b, 0.1);
    dp_bytes_f32(&b, -2.5f);
    dp_bytes_str(&b, "hello");
    CHECK(!b.failed && b.len == 1 + 4 + 8 + 8 + 4 + 4 + 5);
    CHECK(b.data[1] == 0xef && b.data[4] == 0xde); /* little-endian */
    dp_cursor c = dp_cursor_of(b.data, b.len);
    CHECK(dp_cursor_u8(&c) == 0xab);
    CHECK(dp_cursor_u32(&c) == 0xdeadbeef);
    CHECK(dp_cursor_i64(&c) == -5);
    CHECK(dp_cursor_f64(&c) == 0.1);
    CHECK(dp_cursor_f32(&c) == -2.5f);
    char s[8];
    CHECK(dp_cursor_str(&c, s, sizeof s) && !strcmp(s, "hello"));
    CHECK(!c.bad && dp_cursor_left(&c) == 0);
    CHECK(dp_cursor_u32(&c) == 0 && c.bad); /* overrun is sticky and yields 0 */
    CHECK(dp_cursor_u8(&c) == 0 && c.bad);
    /* a string longer than the destination, or than the payload, fails */
    dp_cursor c2 = dp_cursor_of(b.data + 25, b.len - 25);
    char tiny[4];
    CHECK(!dp_cursor_str(&c2, tiny, sizeof tiny) && c2.bad);
    uint8_t lie[6] = {200, 0, 0, 0, 'a', 'b'};
    dp_cursor c3 = dp_cursor_of(lie, sizeof lie);
    char big[300];
    CHECK(!dp_cursor_str(&c3, big, sizeof big));
    uint8_t nul[7] = {3, 0, 0, 0, 'a', 0, 'b'};
    dp_cursor c4 = dp_cursor_of(nul, sizeof nul);
    CHECK(!dp_cursor_str(&c4, big, sizeof big));
    dp_bytes_free(&b);
}

/* A small but complete container: a text section, a tensor section, an empty one. */
static void build_sample(dp_ckpt_builder *b, dp_dtype dtype) {
    dp_bytes *s = dp_ckpt_builder_add(b, DP_SEC_CONFIG, 0);
    dp_bytes_put(s, "run: { seed = 1; };\n", 20);
    s = dp_ckpt_builder_add(b, DP_SEC_PARAMS, 0);
    dp_bytes_u32(s, 2);
    float w[3 * 4 * 5], v[7];
    dp_fill_uniform(w, 60, 1, 1.0f);
    dp_fill_uniform(v, 7, 2, 3.0f);
    int dw[3] = {3, 4, 5}, dv[1] = {7};
    dp_tensor_codec codec = {.dtype = dtype};
    CHECK(dp_tensor_record_put(s, "conv.weight", dw, 3, w, 60, &codec, NULL) == DP_OK);
    CHECK(dp_tensor_record_put(s, "conv.bias", dv, 1, v, 7, &codec, NULL) == DP_OK);
    dp_ckpt_builder_add(b, DP_SEC_METRICS, 0);
}

static void test_container_round_trip(void) {
    dp_ckpt_builder b = {0};
    build_sample(&b, DP_DTYPE_F32);
    /* an unknown (future) section without the required flag is skipped by readers */
    dp_bytes *future = dp_ckpt_builder_add(&b, 200, 0);
    dp_bytes_str(future, "from the future");
    uint8_t *img;
    size_t size;
    dp_error err = {0};
    CHECK(dp_ckpt_builder_to_memory(&b, &img, &size, &err) == DP_OK);
    CHECK(size == dp_ckpt_builder_size(&b));
    CHECK(!memcmp(img, DP_CKPT_MAGIC, 8));
    dp_ckpt_file f;
    CHECK_MSG(dp_ckpt_file_parse(&f, img, size, "mem", &err) == DP_OK, "%s", err.msg);
    CHECK(f.n_sec == 4 && f.major == DP_CKPT_VERSION_MAJOR);
    const dp_ckpt_section *cfg = dp_ckpt_file_find(&f, DP_SEC_CONFIG);
    CHECK(cfg && cfg->length == 20 && !memcmp(cfg->data, "run: { seed = 1; };\n", 20));
    const dp_ckpt_section *met = dp_ckpt_file_find(&f, DP_SEC_METRICS);
    CHECK(met && met->length == 0);
    CHECK(dp_ckpt_file_find(&f, DP_SEC_ARCH) == NULL);
    /* tensors decode bitwise */
    const dp_ckpt_section *ps = dp_ckpt_file_find(&f, DP_SEC_PARAMS);
    dp_cursor c = dp_cursor_of(ps->data, ps->length);
    CHECK(dp_cursor_u32(&c) == 2);
    dp_tensor_record r;
    CHECK(dp_tensor_record_next(&c, &r, "mem", &err) == DP_OK);
    CHECK(!strcmp(r.name, "conv.weight") && r.ndim == 3 && r.dims[2] == 5 && r.numel == 60);
    float w[60], back[60];
    dp_fill_uniform(w, 60, 1, 1.0f);
    CHECK(dp_tensor_record_decode(&r, back, "mem", &err) == DP_OK);
    CHECK(!memcmp(w, back, sizeof w));
    CHECK(dp_tensor_record_next(&c, &r, "mem", &err) == DP_OK && r.numel == 7);
    dp_ckpt_file_free(&f);

    /* the same unknown section marked required is refused with a clear message */
    b.sec[b.n - 1].flags = DP_SECF_REQUIRED;
    CHECK(dp_ckpt_builder_to_memory(&b, &img, &size, &err) == DP_OK);
    CHECK(dp_ckpt_file_parse(&f, img, size, "mem", &err) == DP_ERR_CHECKPOINT);
    CHECK_MSG(strstr(err.msg, "type 200") && strstr(err.msg, "newer"), "%s", err.msg);
    dp_ckpt_file_free(&f);
    dp_ckpt_builder_free(&b);
}

static void test_atomic_write(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/a.dpck", tmpdir);
    dp_ckpt_builder b = {0};
    build_sample(&b, DP_DTYPE_F32);
    dp_error err = {0};
    CHECK_MSG(dp_ckpt_builder_write(&b, path, &err) == DP_OK, "%s", err.msg);
    dp_ckpt_file f;
    CHECK_MSG(dp_ckpt_file_read(&f, path, &err) == DP_OK, "%s", err.msg);
    CHECK(f.n_sec == 3);
    dp_ckpt_file_free(&f);
    size_t good_size;
    uint8_t *good = ct_read_file(path, &good_size);

    /* a directory that cannot exist (its parent is a regular file): works even as root */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/a.dpck/sub/x.dpck", tmpdir);
    CHECK(dp_ckpt_builder_write(&b, bad, &err) == DP_ERR_IO);
    CHECK_MSG(strstr(err.msg, bad) && strstr(err.msg, "Not a directory"), "%s", err.msg);

    /* ulimit -f: in a child, a file size limit below the file's size. SIGXFSZ must not kill
     * the process; the write reports EFBIG and the previous file stays as it was. */
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {100, 100};
        setrlimit(RLIMIT_FSIZE, &rl);
        dp_error e = {0};
        dp_status st = dp_ckpt_builder_write(&b, path, &e);
        int ok = st == DP_ERR_IO && strstr(e.msg, "File too large") && strstr(e.msg, path) &&
                 strstr(e.msg, "left intact");
        if (!ok) fprintf(stderr, "child: %s\n", e.msg);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    size_t now_size;
    uint8_t *now = ct_read_file(path, &now_size);
    CHECK(now && now_size == good_size && !memcmp(now, good, good_size));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)pid);
    CHECK(access(tmp, F_OK) != 0); /* the temporary file was removed */
    free(now);
    free(good);
    dp_ckpt_builder_free(&b);
}

static void test_shuffle_zlib(void) {
    enum { N = 20000 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint8_t *s = malloc(4 * N), *u = malloc(4 * N);
    dp_rng r;
    dp_rng_init(&r, 7, 0, 0, 0);
    for (int i = 0; i < N; i++) x[i] = (float)(0.05 * dp_rng_normal(&r)); /* weight-like */
    dp_byte_shuffle((const uint8_t *)x, s, N, 4);
    CHECK(s[0] == ((const uint8_t *)x)[0] && s[N] == ((const uint8_t *)x)[1]);
    dp_byte_unshuffle(s, u, N, 4);
    CHECK(!memcmp(u, x, 4 * N));
    uint8_t *z;
    size_t zn;
    dp_error err;
    CHECK(dp_zlib_compress(x, 4 * N, 6, false, &z, &zn, &err) == DP_OK);
    CHECK(dp_zlib_decompress(z, zn, y, 4 * N, "t", &err) == DP_OK && !memcmp(x, y, 4 * N));
    /* wrong expected length, truncated and damaged streams fail cleanly */
    CHECK(dp_zlib_decompress(z, zn, y, 4 * N - 1, "t", &err) == DP_ERR_CHECKPOINT);
    CHECK(dp_zlib_decompress(z, zn - 3, y, 4 * N, "t", &err) == DP_ERR_CHECKPOINT);
    z[zn / 2] ^= 0x10;
    CHECK(dp_zlib_decompress(z, zn, y, 4 * N, "t", &err) == DP_ERR_CHECKPOINT);
    free(z);
    /* an empty buffer */
    CHECK(dp_zlib_compress(x, 0, 6, true, &z, &zn, &err) == DP_OK);
    CHECK_MSG(dp_zlib_decompress(z, zn, y, 0, "t", &err) == DP_OK, "%s", err.msg);
    free(z);

    /* sizes: shuffle beats plain zlib, fp16 about halves */
    size_t sz[5];
    dp_tensor_codec codecs[5] = {{DP_DTYPE_F32, 6, true, false},
                                 {DP_DTYPE_F32, 0, false, false},
                                 {DP_DTYPE_F16, 0, false, false},
                                 {DP_DTYPE_BF16, 0, false, false},
                                 {DP_DTYPE_F32, 6, false, true}};
    int dims[1] = {N};
    for (int k = 0; k < 5; k++) {
        dp_bytes b = {0};
        CHECK(dp_tensor_record_put(&b, "t", dims, 1, x, N, &codecs[k], &err) == DP_OK);
        sz[k] = b.len;
        dp_cursor c = dp_cursor_of(b.data, b.len);
        dp_tensor_record rec;
        CHECK(dp_tensor_record_next(&c, &rec, "t", &err) == DP_OK);
        CHECK(dp_tensor_record_decode(&rec, y, "t", &err) == DP_OK);
        if (k < 2 || k == 4)
            CHECK(!memcmp(x, y, 4 * N));
        else
            CHECK(dp_max_rel_diff(y, x, N) < (k == 2 ? 1e-3 : 1e-2));
        dp_bytes_free(&b);
    }
    printf("N=%d normal floats: raw %d, zlib %zu, shuffle+zlib(rle) %zu, shuffle+zlib(level 6) "
           "%zu, f16 %zu, bf16 %zu bytes\n",
           N, 4 * N, sz[0], sz[1], sz[4], sz[2], sz[3]);
    CHECK(sz[1] < sz[0]);
    CHECK(sz[1] <= sz[4]); /* run-length + Huffman is no worse than LZ77 search here */
    CHECK(sz[2] < sz[1] * 6 / 10);
    /* constant tensors (BN gamma = 1, zero biases) shrink to almost nothing with Z_RLE */
    for (int i = 0; i < N; i++) x[i] = 1.0f;
    dp_bytes ones = {0};
    CHECK(dp_tensor_record_put(&ones, "ones", dims, 1, x, N, NULL, &err) == DP_OK);
    CHECK_MSG(ones.len < 400, "%zu bytes for %d ones", ones.len, N);
    dp_bytes_free(&ones);
    free(x), free(y), free(s), free(u);
}

/* Nearest bf16 of f by exhaustive comparison of the two neighbours (ties to even). */
static uint16_t bf16_reference(float f) {
    uint32_t u = bits(f);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double dl = fabs((double)f - (double)from_bits(lo));
    double dh = isinf(from_bits(hi)) ? INFINITY : fabs((double)from_bits(hi) - (double)f);
    if (isinf(from_bits(hi)) && (u & 0x7fffffffu) >= 0x7f7f8000u) return (uint16_t)(hi >> 16);
    if (dl < dh) return (uint16_t)(lo >> 16);
    if (dh < dl) return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

static void test_half_precision(void) {
    /* every fp16 / bf16 value converts to fp32 and back to itself (NaNs stay NaN) */
    int f16_bad = 0, bf16_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dp_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !isnan(f) || !isnan(dp_f16_to_f32(dp_f32_to_f16(f))) : dp_f32_to_f16(f) != h)
            f16_bad++;
        float g = dp_bf16_to_f32((uint16_t)h);
        bool bnan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (bnan ? !isnan(g) || !isnan(dp_bf16_to_f32(dp_f32_to_bf16(g))) : dp_f32_to_bf16(g) != h)
            bf16_bad++;
    }
    CHECK_MSG(f16_bad == 0, "%d fp16 values do not round-trip", f16_bad);
    CHECK_MSG(bf16_bad == 0, "%d bf16 values do not round-trip", bf16_bad);
    /* known values and rounding */
    CHECK(dp_f32_to_f16(1.0f) == 0x3c00 && dp_f32_to_f16(-2.0f) == 0xc000);
    CHECK(dp_f32_to_f16(65504.0f) == 0x7bff && dp_f32_to_f16(65519.99f) == 0x7bff);
    CHECK(dp_f32_to_f16(65520.0f) == 0x7c00 && dp_f32_to_f16(1e10f) == 0x7c00);
    CHECK(dp_f32_to_f16(-INFINITY) == 0xfc00 && dp_f32_to_f16(-0.0f) == 0x8000);
    CHECK(dp_f32_to_f16(ldexpf(1, -24)) == 0x0001);    /* smallest subnormal */
    CHECK(dp_f32_to_f16(ldexpf(1, -25)) == 0x0000);    /* tie: to even (zero) */
    CHECK(dp_f32_to_f16(ldexpf(1.5f, -24)) == 0x0002); /* tie: 1.5 -> 2 (even) */
    CHECK(dp_f32_to_f16(ldexpf(1.0001f, -25)) == 0x0001);
    CHECK(dp_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);     /* tie between 1 and 1+2^-10: even */
    CHECK(dp_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02); /* tie: up to even */
    CHECK(dp_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)) == 0x3c01); /* above the tie */
    CHECK(dp_f32_to_f16(ldexpf(1023.5f, -24)) == 0x0400); /* rounds up into the normals */
    CHECK(isnan(dp_f16_to_f32(dp_f32_to_f16(NAN))));
    CHECK(dp_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(dp_f32_to_bf16(from_bits(0x3f808000u)) == 0x3f80); /* tie -> even */
    CHECK(dp_f32_to_bf16(from_bits(0x3f818000u)) == 0x3f82); /* tie -> even (up) */
    CHECK(dp_f32_to_bf16(from_bits(0x3f808001u)) == 0x3f81);
    CHECK(dp_f32_to_bf16(from_bits(0x7f7fffffu)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(isnan(dp_bf16_to_f32(dp_f32_to_bf16(from_bits(0x7f800001u))))); /* sNaN stays NaN */

    /* random fp32 patterns against references: the compiler's _Float16 (RNE) and an exhaustive
     * neighbour comparison for bf16 */
    dp_rng r;
    dp_rng_init(&r, 11, 0, 0, 0);
    int f16_mis = 0, bf16_mis = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = dp_rng_u32(&r);
        if (i & 1) u = (u & 0x8fffffffu) | 0x30000000u; /* bias towards fp16's range */
        float f = from_bits(u);
        if (isnan(f)) continue;
#ifdef __FLT16_MAX__
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        if (dp_f32_to_f16(f) != rb) f16_mis++;
#endif
        if (dp_f32_to_bf16(f) != bf16_reference(f)) bf16_mis++;
    }
    CHECK_MSG(f16_mis == 0, "%d fp16 conversions differ from _Float16", f16_mis);
    CHECK_MSG(bf16_mis == 0, "%d bf16 conversions differ from the reference", bf16_mis);
}

/* Every way of damaging a file gives DP_ERR_CHECKPOINT with a message naming it. */
static int expect_error(const uint8_t *img, size_t size, const char *needle) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, img, size);
    dp_ckpt_file f;
    dp_error err = {0};
    dp_status st = dp_ckpt_file_parse(&f, copy, size, "damaged.dpck", &err);
    /* a container that passes must still fail when its tensors are decoded */
    if (st == DP_OK) {
        const dp_ckpt_section *ps = dp_ckpt_file_find(&f, DP_SEC_PARAMS);
        dp_cursor c = dp_cursor_of(ps ? ps->data : NULL, ps ? ps->length : 0);
        uint32_t n = dp_cursor_u32(&c);
        float out[64];
        for (uint32_t i = 0; i < n && st == DP_OK; i++) {
            dp_tensor_record r;
            st = dp_tensor_record_next(&c, &r, "damaged.dpck", &err);
            if (st == DP_OK && r.numel > 64)
                st = dp_fail(&err, DP_ERR_CHECKPOINT, "damaged.dpck: too big for the test");
            if (st == DP_OK) st = dp_tensor_record_decode(&r, out, "damaged.dpck", &err);
        }
        if (c.bad && st == DP_OK) st = DP_ERR_CHECKPOINT;
    }
    dp_ckpt_file_free(&f);
    int ok = st == DP_ERR_CHECKPOINT && strstr(err.msg, "damaged.dpck") &&
             (!needle || strstr(err.msg, needle));
    if (!ok) fprintf(stderr, "  unexpected: status %d, message: %s\n", st, err.msg);
    return ok;
}

static void test_damaged_matrix(void) {
    dp_ckpt_builder b = {0};
    build_sample(&b, DP_DTYPE_F32);
    uint8_t *img;
    size_t size;
    CHECK(dp_ckpt_builder_to_memory(&b, &img, &size, NULL) == DP_OK);
    dp_ckpt_builder_free(&b);
    printf("damaged-file matrix over a %zu-byte file\n", size);

    /* truncated at every length, including empty */
    int trunc_bad = 0;
    for (size_t n = 0; n < size; n++) trunc_bad += !expect_error(img, n, NULL);
    CHECK_MSG(trunc_bad == 0, "%d truncations not reported", trunc_bad);
    CHECK(expect_error(img, size / 2, "truncated"));
    /* trailing data */
    uint8_t *longer = malloc(size + 5);
    memcpy(longer, img, size);
    memset(longer + size, 0, 5);
    CHECK(expect_error(longer, size + 5, "trailing"));
    free(longer);

    /* one bit flipped in every byte: header, table and every section are covered by a CRC */
    int flip_bad = 0;
    uint8_t *copy = malloc(size);
    for (size_t i = 0; i < size; i++) {
        memcpy(copy, img, size);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        flip_bad += !expect_error(copy, size, NULL);
    }
    CHECK_MSG(flip_bad == 0, "%d bit flips not reported", flip_bad);
    /* the message names the damaged part */
    uint64_t plen = 0, poff = ct_section_offset(img, DP_SEC_PARAMS, &plen);
    memcpy(copy, img, size);
    copy[poff + plen / 2] ^= 4;
    CHECK(expect_error(copy, size, "section #1 'params'"));
    CHECK(expect_error(copy, size, "CRC32"));
    memcpy(copy, img, size);
    copy[40] ^= 1;
    CHECK(expect_error(copy, size, "section table is damaged"));
    memcpy(copy, img, size);
    copy[20] ^= 1;
    CHECK(expect_error(copy, size, "header is damaged"));

    /* foreign files */
    const char *text = "this is not a checkpoint, just some text of reasonable length......";
    CHECK(expect_error((const uint8_t *)text, strlen(text), "not a dprune checkpoint"));
    CHECK(expect_error((const uint8_t *)"", 0, "not a dprune checkpoint"));
    memcpy(copy, img, size);
    memcpy(copy, "PK\003\004", 4);
    CHECK(expect_error(copy, size, "not a dprune checkpoint"));

    /* wrong version: a well-formed header of major version 2, and a damaged one */
    memcpy(copy, img, size);
    copy[8] = 2, copy[10] = 0; /* 2.0, whatever minor this build writes */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "format version 2.0"));
    copy[29] ^= 0xff;
    CHECK(expect_error(copy, size, "version 2.0 (header CRC mismatch)"));
    /* a newer minor version of the same major is read */
    memcpy(copy, img, size);
    copy[10] = 7;
    ct_refresh_crcs(copy, size);
    dp_ckpt_file f;
    uint8_t *dup = malloc(size);
    memcpy(dup, copy, size);
    CHECK(dp_ckpt_file_parse(&f, dup, size, "minor", NULL) == DP_OK && f.minor == 7);
    dp_ckpt_file_free(&f);

    /* absurd sizes, with every CRC forged so the size checks themselves are reached */
    memcpy(copy, img, size);
    ct_put32(copy + 12, 1000000000u); /* section count */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "absurd section count"));
    memcpy(copy, img, size);
    ct_put32(copy + 12, 100); /* plausible count, table beyond the file */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "section table ends"));
    memcpy(copy, img, size);
    ct_put64(copy + 32 + 16, (uint64_t)1 << 62); /* section length */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "does not fit"));
    memcpy(copy, img, size);
    ct_put64(copy + 16, (uint64_t)1 << 50); /* file length in the header */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "truncated"));
    /* inside the tensor section: absurd dims, lying raw and compressed lengths */
    size_t rec = poff + 4 + 4 + strlen("conv.weight") + 4; /* first record's dims */
    memcpy(copy, img, size);
    ct_put64(copy + rec, (uint64_t)1 << 40);
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "absurd dims"));
    memcpy(copy, img, size);
    ct_put64(copy + rec + 3 * 8, 1000); /* raw length != 60 * 4 */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "claims 1000 bytes"));
    memcpy(copy, img, size);
    ct_put64(copy + rec + 4 * 8, (uint64_t)1 << 60); /* compressed length */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "compressed bytes"));
    memcpy(copy, img, size);
    copy[rec - 4] = 9; /* dtype */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "dtype 9"));
    memcpy(copy, img, size);
    copy[rec + 5 * 8 + 6] ^= 0x55; /* inside the zlib stream, CRC forged: zlib's own check */
    ct_refresh_crcs(copy, size);
    CHECK(expect_error(copy, size, "conv.weight"));
    free(copy);
    free(img);

    /* reading from disk: missing file, a directory, a truncated file */
    dp_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/missing.dpck", tmpdir);
    CHECK(dp_ckpt_file_read(&f, path, &err) == DP_ERR_IO && strstr(err.msg, "missing.dpck"));
    CHECK(dp_ckpt_file_read(&f, tmpdir, &err) == DP_ERR_IO);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dprune_ckpt_file_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_bytes_cursor();
    test_container_round_trip();
    test_atomic_write();
    test_shuffle_zlib();
    test_half_precision();
    test_damaged_matrix();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return dp_test_finish();
}
