/*
 * A minimal figurine MCU firmware written from docs/PROTOCOL.md alone (no code shared with the
 * Python implementation): it proves the document is enough to write firmware from.
 *
 * The serial line is stdin (bytes from the host) and stdout (bytes to the host); the test connects
 * both to the master side of a pty. Every change of the visible state is printed to stderr as one
 * line, e.g. "GLOW 255 0 0 128 0 0 0", so the test can see what the figurine shows.
 *
 * Build: cc -std=c99 -O2 -Wall -Wextra -Werror -o cleanroom_mcu cleanroom_mcu.c
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* §2 limits */
#define MAX_ENCODED 253
#define MAX_PAYLOAD 248
#define MAX_TEXT 40 /* what this display shows; announced as max_text */

/* §4 types */
enum {
    T_HELLO = 0x01, T_HEARTBEAT = 0x02, T_ACK = 0x03, T_NACK = 0x04,
    T_SET_GLOW = 0x10, T_SET_POSE = 0x11, T_SHOW_TEXT = 0x12, T_SET_BRIGHTNESS = 0x13,
    T_SLEEP = 0x14, T_PLAY_ANIMATION = 0x20, T_TONE = 0x21,
    R_HELLO_REPLY = 0x81, R_HEARTBEAT = 0x82, R_ACK = 0x83, R_NACK = 0x84, R_BOOT = 0x88
};
/* §7 */
enum { UNKNOWN_TYPE = 1, BAD_LENGTH = 2, BAD_VALUE = 3, UNSUPPORTED = 4, NOT_READY = 5 };
#define ACK_REQ 0x01
#define RETX 0x02

static uint16_t tx_seq;
static double last_tx, last_rx, heartbeat_s = 1.0;
static int session;
/* §5.1: the seq of the HELLO that started the session, and whether a command was executed in it
 * (a RETX HELLO with that seq before any command is a repeat: answered, nothing else) */
static uint16_t session_hello;
static int executed;

/* §5.0 duplicate detection: the last 32 commands acted on and the last one per type, each with
 * its type, seq, time, and position: how far `newest` had advanced when it was stored plus its
 * distance behind `newest`, so the same 16-bit seq after a wrap is told apart. */
struct seen_entry {
    int used;
    uint8_t type;
    uint16_t seq;
    uint64_t where;
    double at;
};
#define DUP_TTL_S 6.0
static struct seen_entry window[32], last_by_type[256];
static int window_next, have_newest;
static uint16_t newest;
static uint64_t ahead; /* how far `newest` moved since the session started */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* §2: CRC-32 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF) */
static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void write_all(const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_frame(uint8_t type, uint8_t flags, const uint8_t *body, size_t n) {
    uint8_t raw[MAX_PAYLOAD + 4], out[MAX_ENCODED + 2];
    uint16_t seq = tx_seq++;
    raw[0] = type;
    raw[1] = flags;
    raw[2] = (uint8_t)(seq & 0xFF);
    raw[3] = (uint8_t)(seq >> 8);
    if (n) memcpy(raw + 4, body, n);
    size_t len = 4 + n;
    uint32_t c = crc32(raw, len);
    for (int i = 0; i < 4; i++) raw[len++] = (uint8_t)(c >> (8 * i));
    /* COBS between two 0x00 delimiters */
    size_t o = 0, code_at;
    uint8_t code = 1;
    out[o++] = 0;
    code_at = o++;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = raw[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out[o++] = 0;
    write_all(out, o);
    last_tx = now_s();
}

static void send_ack(uint16_t seq) {
    uint8_t b[2] = {(uint8_t)(seq & 0xFF), (uint8_t)(seq >> 8)};
    send_frame(R_ACK, 0, b, 2);
}

static void send_nack(uint16_t seq, uint8_t reason) {
    uint8_t b[3] = {(uint8_t)(seq & 0xFF), (uint8_t)(seq >> 8), reason};
    send_frame(R_NACK, 0, b, 3);
}

static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t extra;
        if (c < 0x80) extra = 0;
        else if (c >= 0xC2 && c <= 0xDF) extra = 1;
        else if ((c & 0xF0) == 0xE0) extra = 2;
        else if (c >= 0xF0 && c <= 0xF4) extra = 3;
        else return 0;
        if (n - i < extra + 1) return 0;
        for (size_t k = 1; k <= extra; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += extra + 1;
    }
    return 1;
}

/* every valid frame from the host: `newest` moves when seq is ahead (RFC 1982: 1..32767 in front) */
static void note(uint16_t seq) {
    if (!have_newest) {
        have_newest = 1;
        newest = seq;
        return;
    }
    uint16_t step = (uint16_t)(seq - newest);
    if (step > 0 && step < 0x8000) {
        newest = seq;
        ahead += step;
    }
}

static int matches(const struct seen_entry *e, uint8_t type, uint16_t seq, uint64_t where,
                   double now) {
    return e->used && e->type == type && e->seq == seq && e->where == where &&
           now - e->at < DUP_TTL_S;
}

/* a duplicate: same type and seq acted on < 6 s ago, at most 32767 behind the newest seq */
static int seen(uint8_t type, uint16_t seq, double now) {
    uint16_t behind = (uint16_t)(newest - seq);
    uint64_t where = ahead - behind;
    if (behind >= 0x8000) return 0;
    if (matches(&last_by_type[type], type, seq, where, now)) return 1;
    for (int i = 0; i < 32; i++)
        if (matches(&window[i], type, seq, where, now)) return 1;
    return 0;
}

static void remember(uint8_t type, uint16_t seq, double now) {
    struct seen_entry e = {1, type, seq, ahead - (uint16_t)(newest - seq), now};
    last_by_type[type] = e;
    window[window_next] = e;
    window_next = (window_next + 1) % 32;
    executed = 1;
}

static void new_session(uint16_t hello_seq) {
    memset(window, 0, sizeof window);
    memset(last_by_type, 0, sizeof last_by_type);
    window_next = 0;
    executed = 0;
    session_hello = hello_seq;
    ahead = 0;
    have_newest = 0;
    note(hello_seq);
}

/* §6.1: check a command; 0 if it can be executed, else the NACK reason */
static uint8_t check(uint8_t type, const uint8_t *b, size_t n) {
    static const size_t need[256] = {[T_SET_GLOW] = 9, [T_SET_POSE] = 4, [T_SHOW_TEXT] = 4,
                                     [T_SET_BRIGHTNESS] = 1, [T_SLEEP] = 3,
                                     [T_PLAY_ANIMATION] = 3, [T_TONE] = 5};
    if (n < need[type]) return BAD_LENGTH;
    switch (type) {
    case T_SET_POSE: return b[3] > 3 ? BAD_VALUE : 0;
    case T_SHOW_TEXT: /* §6.1: lengths before values */
        if ((size_t)b[3] > n - 4) return BAD_LENGTH;
        if (b[0] > 7) return BAD_VALUE;
        if (b[3] > MAX_TEXT) return BAD_VALUE;
        return valid_utf8(b + 4, b[3]) ? 0 : BAD_VALUE;
    case T_SLEEP: return b[0] > 1 ? BAD_VALUE : 0;
    case T_PLAY_ANIMATION: return (b[0] > 7 || b[2] == 0) ? BAD_VALUE : 0;
    case T_TONE: {
        uint16_t f = u16(b), d = u16(b + 2);
        if (d > 5000) return BAD_VALUE;
        if (f != 0 && (f < 20 || f > 20000 || d == 0)) return BAD_VALUE;
        return 0;
    }
    default: return 0;
    }
}

static void execute(uint8_t type, const uint8_t *b) {
    switch (type) {
    case T_SET_GLOW:
        fprintf(stderr, "GLOW %u %u %u %u %u %u %u\n", b[0], b[1], b[2], b[3], u16(b + 4), b[6],
                u16(b + 7));
        break;
    case T_SET_POSE: fprintf(stderr, "POSE %u %u %u\n", b[0], u16(b + 1), b[3]); break;
    case T_SHOW_TEXT:
        fprintf(stderr, "TEXT %u %u %.*s\n", b[0], u16(b + 1), (int)b[3], (const char *)b + 4);
        break;
    case T_SET_BRIGHTNESS: fprintf(stderr, "BRIGHTNESS %u\n", b[0]); break;
    case T_SLEEP: fprintf(stderr, "SLEEP %u %u\n", b[0], u16(b + 1)); break;
    case T_PLAY_ANIMATION: fprintf(stderr, "ANIM %u %u %u\n", b[0], b[1], b[2]); break;
    case T_TONE: fprintf(stderr, "TONE %u %u %u\n", u16(b), u16(b + 2), b[4]); break;
    }
    fflush(stderr);
}

static void handle(const uint8_t *p, size_t n) {
    uint8_t type = p[0], flags = p[1];
    uint16_t seq = u16(p + 2);
    const uint8_t *b = p + 4;
    size_t blen = n - 4;
    if (type & 0x80) return; /* §3: wrong direction (an echo) */
    last_rx = now_s();
    note(seq);
    if (type == T_HELLO) {
        if (blen < 4) return;
        uint8_t lo = b[0], hi = b[1], v = (lo <= 1 && 1 <= hi) ? 1 : 0;
        uint8_t r[16] = {(uint8_t)(seq & 0xFF), (uint8_t)(seq >> 8), v, 1, 1, 0, 9, 0,
                         0x17 /* servo, buzzer, button, display */, 8, 0, 64, 0, 32, 0, MAX_TEXT};
        send_frame(R_HELLO_REPLY, 0, r, sizeof r);
        if (session && (flags & RETX) && seq == session_hello && !executed) return; /* a repeat */
        session = v != 0;
        if (session) {
            uint16_t hb = u16(b + 2);
            new_session(seq);
            heartbeat_s = (hb < 50 ? 50 : hb) / 1000.0; /* §4.1: below 50 ms is taken as 50 */
            fprintf(stderr, "SESSION %u\n", v);
            fflush(stderr);
        }
        return;
    }
    if (!session) {
        send_nack(seq, NOT_READY);
        return;
    }
    switch (type) {
    case T_HEARTBEAT: case T_ACK: case T_NACK: return;
    case T_SET_GLOW: case T_SET_POSE: case T_SHOW_TEXT: case T_SET_BRIGHTNESS: case T_SLEEP:
    case T_PLAY_ANIMATION: case T_TONE: {
        uint8_t reason = check(type, b, blen);
        if (reason) {
            send_nack(seq, reason);
            return;
        }
        send_ack(seq);
        if (!seen(type, seq, last_rx)) {
            remember(type, seq, last_rx);
            execute(type, b);
        }
        return;
    }
    default:
        if (flags & ACK_REQ) send_nack(seq, UNKNOWN_TYPE);
    }
}

/* §2 receiver algorithm */
static uint8_t buf[MAX_ENCODED];
static size_t buf_len;
static int overflow;

static void on_byte(uint8_t c) {
    if (c != 0) {
        if (overflow) return;
        if (buf_len == MAX_ENCODED) {
            overflow = 1;
            return;
        }
        buf[buf_len++] = c;
        return;
    }
    if (buf_len > 0 && !overflow) {
        uint8_t dec[MAX_ENCODED];
        size_t i = 0, o = 0;
        int ok = 1;
        while (i < buf_len) {
            uint8_t code = buf[i];
            if (code == 0 || i + code > buf_len) {
                ok = 0;
                break;
            }
            memcpy(dec + o, buf + i + 1, code - 1u);
            o += code - 1u;
            i += code;
            if (code < 0xFF && i < buf_len) dec[o++] = 0;
        }
        if (ok && o >= 8) {
            uint32_t want = (uint32_t)dec[o - 4] | (uint32_t)dec[o - 3] << 8 |
                            (uint32_t)dec[o - 2] << 16 | (uint32_t)dec[o - 1] << 24;
            if (crc32(dec, o - 4) == want) handle(dec, o - 4);
        }
    }
    buf_len = 0;
    overflow = 0;
}

int main(void) {
    uint8_t boot = 1; /* POWER_ON */
    new_session(0);
    last_rx = last_tx = now_s();
    send_frame(R_BOOT, 0, &boot, 1);
    fprintf(stderr, "BOOT\n");
    fflush(stderr);
    for (;;) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int r = poll(&pfd, 1, 20);
        if (r > 0) {
            uint8_t chunk[512];
            ssize_t got = read(0, chunk, sizeof chunk);
            if (got == 0) return 0;
            if (got < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                return 0;
            }
            for (ssize_t i = 0; i < got; i++) on_byte(chunk[i]);
        }
        double t = now_s();
        if (session && t - last_rx >= 3.5 * heartbeat_s) { /* §5.2 */
            session = 0;
            fprintf(stderr, "HOST SILENT\n");
            fflush(stderr);
        }
        if (session && t - last_tx >= heartbeat_s) send_frame(R_HEARTBEAT, 0, NULL, 0);
    }
}
