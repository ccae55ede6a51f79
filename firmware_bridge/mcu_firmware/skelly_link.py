# Skelly figurine firmware (MicroPython): the portable protocol part, the MCU role of
# docs/PROTOCOL.md written from the document (§2 framing, §5 sessions and duplicates, §6 ACK/NACK,
# heartbeats and input events). No hardware here: bytes come in through Link.feed(), go out
# through io.write(memoryview), and commands are handed to a Show (skelly_show.py).
#
# Allocation-conscious: receive, decode and send buffers are preallocated; a frame costs at most
# one small memoryview for the CRC. Times are time.ticks_ms() values (wrap-safe ticks_diff).
# This file is shipped to the board, never imported by the host code.
import time

from micropython import const

try:
    from binascii import crc32 as _crc32
except ImportError:  # a port built without binascii.crc32: the same CRC from a table
    _crc32 = None

_MAX_ENC = const(253)  # §2: encoded frame without delimiters
_MAX_PAYLOAD = const(248)

# §4 message types
T_HELLO = const(0x01)
T_HEARTBEAT = const(0x02)
T_ACK = const(0x03)
T_NACK = const(0x04)
T_SET_GLOW = const(0x10)
T_SET_POSE = const(0x11)
T_SHOW_TEXT = const(0x12)
T_SET_BRIGHTNESS = const(0x13)
T_SLEEP = const(0x14)
T_PLAY_ANIMATION = const(0x20)
T_TONE = const(0x21)
R_HELLO_REPLY = const(0x81)
R_HEARTBEAT = const(0x82)
R_ACK = const(0x83)
R_NACK = const(0x84)
R_BOOT = const(0x88)
R_INPUT_EVENT = const(0x90)
R_STATUS = const(0x91)
R_LOG = const(0x92)

# §7 NACK reasons
UNKNOWN_TYPE = const(1)
BAD_LENGTH = const(2)
BAD_VALUE = const(3)
UNSUPPORTED = const(4)
NOT_READY = const(5)

_ACK_REQ = const(0x01)
_RETX = const(0x02)
PROTO_VERSION = const(1)
FW_VERSION = (1, 0, 0)

# §5.0 duplicate memory
_DUP_N = const(32)
_DUP_MS = const(6000)
_POS_MASK = const(0x3FFFFFFF)  # positions kept as small ints; 2**30 frames never fit in 6 s
# §6.2/§6.3 timers (ms)
_RTO_MS = const(300)
_RTO_MAX_MS = const(2000)
_INPUT_TTL_MS = const(5000)
_INPUTS = const(16)
_STATUS_MIN_MS = const(1000)
_LOG_MAX = const(200)


def _type_slot(t):
    # the ACK_REQ types (§4.1) -> 0..6, the per-type duplicate memory; -1 for the others
    if T_SET_GLOW <= t <= T_SLEEP:
        return t - T_SET_GLOW
    if t == T_PLAY_ANIMATION:
        return 5
    if t == T_TONE:
        return 6
    return -1


_TABLE = None


def _crc_table():
    global _TABLE
    if _TABLE is None:
        import array

        _TABLE = array.array("I", [0] * 256)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            _TABLE[i] = c
    return _TABLE


def crc32(mv, n):
    """CRC-32 (zlib/Ethernet, §2) of the first n bytes of the memoryview mv."""
    if _crc32 is not None:
        return _crc32(mv[:n])
    table = _crc_table()
    c = 0xFFFFFFFF
    for i in range(n):
        c = table[(c ^ mv[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def cobs_decode(src, n, dst):
    """Decode n COBS bytes of src into dst; the decoded length, or -1 if malformed (§2)."""
    i = 0
    o = 0
    while i < n:
        code = src[i]
        i += 1
        end = i + code - 1
        if end > n:
            return -1
        while i < end:
            dst[o] = src[i]
            o += 1
            i += 1
        if code != 0xFF and i < n:
            dst[o] = 0
            o += 1
    return o


def cobs_frame(src, n, dst):
    """Write 00 COBS(src[:n]) 00 into dst; the number of bytes written."""
    dst[0] = 0
    code_at = 1
    o = 2
    code = 1
    for i in range(n):
        b = src[i]
        if b == 0:
            dst[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            dst[o] = b
            o += 1
            code += 1
            if code == 0xFF:
                dst[code_at] = code
                code_at = o
                o += 1
                code = 1
    dst[code_at] = code
    dst[o] = 0
    return o + 1


def utf8_ok(buf, start, end):
    """Strict UTF-8 check of buf[start:end] (no overlongs, surrogates or > U+10FFFF)."""
    i = start
    while i < end:
        b = buf[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            n = 1
            lo, hi = 0x80, 0xBF
        elif 0xE0 <= b <= 0xEF:
            n = 2
            lo = 0xA0 if b == 0xE0 else 0x80
            hi = 0x9F if b == 0xED else 0xBF
        elif 0xF0 <= b <= 0xF4:
            n = 3
            lo = 0x90 if b == 0xF0 else 0x80
            hi = 0x8F if b == 0xF4 else 0xBF
        else:
            return False
        if i + n >= end:
            return False
        c = buf[i + 1]
        if c < lo or c > hi:
            return False
        for k in range(i + 2, i + n + 1):
            if buf[k] & 0xC0 != 0x80:
                return False
        i += n + 1
    return True


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


class Link:
    """The MCU role of the protocol. Call feed() with received bytes, tick() often (every few
    ms); press() reports a gesture. io needs write(memoryview); show is a skelly_show.Show."""

    def __init__(self, io, show, caps, led_count, display_w, display_h, max_text):
        self.io = io
        self.show = show
        self.caps = caps
        self.led_count = led_count
        self.display_w = display_w
        self.display_h = display_h
        self.max_text = max_text
        self._rx = bytearray(_MAX_ENC)
        self._rx_n = 0
        self._overflow = False
        self._dec = bytearray(_MAX_ENC)
        self._dec_mv = memoryview(self._dec)
        self._tx = bytearray(_MAX_PAYLOAD + 4)
        self._tx_mv = memoryview(self._tx)
        self._wire = bytearray(_MAX_ENC + 3)
        self._wire_mv = memoryview(self._wire)
        self.tx_seq = 0
        # counters (STATUS rx_errors is the sum of the first three)
        self.crc_errors = 0
        self.oversize_frames = 0
        self.garbage_bytes = 0
        self.wrong_direction = 0
        self.frames_in = 0
        self.frames_out = 0
        self.duplicates = 0
        # session (§5.1/§5.2)
        self.session = False
        self.heartbeat_ms = 1000
        self.last_rx = 0
        self.last_tx = 0
        # §5.1: the seq of the HELLO that started the session, and whether a command was executed
        # in it (a RETX HELLO with that seq before any command is a repeat: answered, no more)
        self._hello_seq = -1
        self._executed = False
        # §5.0: newest seq, how far it moved (not wrapping), and two memories of acted-on frames
        self._newest = 0
        self._ahead = 0
        n = _DUP_N + 7  # 32 recent frames, then one per ACK_REQ type
        self._d_used = bytearray(n)
        self._d_type = bytearray(n)
        self._d_seq = [0] * n
        self._d_pos = [0] * n
        self._d_at = [0] * n
        self._d_next = 0
        # §6.3 input events, oldest first by insertion number
        self._e_used = bytearray(_INPUTS)
        self._e_kind = bytearray(_INPUTS)
        self._e_src = bytearray(_INPUTS)
        self._e_at = [0] * _INPUTS  # uptime ms of the gesture (u32 on the wire)
        self._e_dur = [0] * _INPUTS
        self._e_born = [0] * _INPUTS  # ticks of the gesture
        self._e_seq = [0] * _INPUTS
        self._e_sent = [0] * _INPUTS  # ticks of the last (re)transmission
        self._e_rto = [0] * _INPUTS
        self._e_live = bytearray(_INPUTS)  # sent in this session
        self._e_order = [0] * _INPUTS
        self._e_count = 0
        # STATUS (§4.2): best effort, on change, at most once a second
        self._st_last = 0
        self._st_flags = -1
        self._st_melt = -1
        self._st_err = -1
        # uptime (§4.2, u32 ms): ticks_ms wraps after 2**30 ms and ticks_diff only spans half
        # of that, so the ms are added up as they pass
        self._uptime = 0
        self._uptime_at = time.ticks_ms()

    # ------------------------------------------------------------------ receiving (§2)

    def feed(self, data, n, now):
        """Bytes from the line: data[:n]."""
        rx = self._rx
        for i in range(n):
            b = data[i]
            if b == 0:
                if self._overflow:
                    self._overflow = False
                elif self._rx_n:
                    self._frame(self._rx_n, now)
                self._rx_n = 0
            elif self._overflow:
                self.garbage_bytes += 1
            elif self._rx_n >= _MAX_ENC:
                self._overflow = True
                self.oversize_frames += 1
                self.garbage_bytes += self._rx_n + 1
                self._rx_n = 0
            else:
                rx[self._rx_n] = b
                self._rx_n += 1

    def _frame(self, n, now):
        dec = self._dec
        m = cobs_decode(self._rx, n, dec)
        if m < 8:
            self.crc_errors += 1
            self.garbage_bytes += n
            return
        m -= 4
        got = dec[m] | (dec[m + 1] << 8) | (dec[m + 2] << 16) | (dec[m + 3] << 24)
        if crc32(self._dec_mv, m) != got:
            self.crc_errors += 1
            self.garbage_bytes += n
            return
        t = dec[0]
        if t & 0x80:  # our own direction echoed back (§3)
            self.wrong_direction += 1
            return
        self.frames_in += 1
        self.last_rx = now
        seq = dec[2] | (dec[3] << 8)
        if t == T_HELLO:
            self._hello(seq, m - 4, now)
            return
        if not self.session:  # §5.1: before a session every other frame is NOT_READY
            self._nack(seq, NOT_READY, now)
            return
        ahead = (seq - self._newest) & 0xFFFF
        if 0 < ahead < 0x8000:
            self._newest = seq
            self._ahead = (self._ahead + ahead) & _POS_MASK
        body_n = m - 4
        if t == T_HEARTBEAT:
            return
        if t in (T_ACK, T_NACK):
            if body_n >= (2 if t == T_ACK else 3):
                self._input_answered(_u16(dec, 4), now)
            return
        slot = _type_slot(t)
        if slot < 0:
            if dec[1] & _ACK_REQ:
                self._nack(seq, UNKNOWN_TYPE, now)
            return
        reason = self.show.check(t, dec, 4, body_n)  # §6.1: length, value, hardware
        if reason:
            self._nack(seq, reason, now)
            return
        behind = (self._newest - seq) & 0xFFFF
        pos = (self._ahead - behind) & _POS_MASK
        if behind < 0x8000 and self._is_duplicate(t, seq, pos, now):
            self.duplicates += 1
            self._ack(seq, now)
            return
        self.show.apply(t, dec, 4, body_n, now)
        self._remember(t, slot, seq, pos, now)
        self._ack(seq, now)

    # ------------------------------------------------------------------ §5.0 duplicates

    def _is_duplicate(self, t, seq, pos, now):
        used = self._d_used
        for i in range(_DUP_N + 7):
            if (
                used[i]
                and self._d_type[i] == t
                and self._d_seq[i] == seq
                and self._d_pos[i] == pos
                and time.ticks_diff(now, self._d_at[i]) < _DUP_MS
            ):
                return True
        return False

    def _remember(self, t, slot, seq, pos, now):
        i = self._d_next
        self._d_next = (i + 1) % _DUP_N
        self._put(i, t, seq, pos, now)
        self._put(_DUP_N + slot, t, seq, pos, now)
        self._executed = True

    def _put(self, k, t, seq, pos, now):
        self._d_used[k] = 1
        self._d_type[k] = t
        self._d_seq[k] = seq
        self._d_pos[k] = pos
        self._d_at[k] = now

    # ------------------------------------------------------------------ §5.1 handshake

    def _hello(self, seq, body_n, now):
        if body_n < 4:
            return  # not ACK_REQ: a short body is dropped (§3)
        dec = self._dec
        pmin, pmax = dec[4], dec[5]
        hb = _u16(dec, 6)
        v = PROTO_VERSION if pmin <= PROTO_VERSION <= pmax else 0
        tx = self._tx
        tx[4] = seq & 0xFF
        tx[5] = seq >> 8
        tx[6] = v
        tx[7] = PROTO_VERSION
        tx[8] = PROTO_VERSION
        tx[9], tx[10], tx[11] = FW_VERSION
        tx[12] = self.caps
        tx[13] = self.led_count & 0xFF
        tx[14] = self.led_count >> 8
        tx[15] = self.display_w & 0xFF
        tx[16] = self.display_w >> 8
        tx[17] = self.display_h & 0xFF
        tx[18] = self.display_h >> 8
        tx[19] = self.max_text
        self._send(R_HELLO_REPLY, 0, self._next_seq(), 16, now)
        if self.session and dec[1] & _RETX and seq == self._hello_seq and not self._executed:
            self.duplicates += 1  # a repeat: the host still waits for the reply (§5.1)
            return
        if not v:
            if self.session:
                self._end_session("no common version")
            return
        self.heartbeat_ms = hb if hb >= 50 else 50
        self._newest = seq
        self._ahead = 0
        self._hello_seq = seq
        self._executed = False
        for i in range(_DUP_N + 7):
            self._d_used[i] = 0
        self.session = True
        self.last_rx = now
        self._st_flags = -1  # a fresh STATUS for the new session
        self.show.session(True, now)
        self.show.note("SESSION", v)
        # §6.3: events still unacknowledged are sent again with fresh numbers, in order
        for i in self._inputs_in_order():
            self._e_live[i] = 0
            self._send_input(i, now)

    def _end_session(self, why):
        self.session = False
        self.show.session(False, time.ticks_ms())
        self.show.note(why, 0)

    # ------------------------------------------------------------------ periodic work

    def tick(self, now):
        self.uptime_ms(now)
        if self.session:
            if time.ticks_diff(now, self.last_rx) >= self.heartbeat_ms * 7 // 2:
                self._end_session("HOST SILENT")  # §5.2: sleepy idle look until a new session
            elif time.ticks_diff(now, self.last_tx) >= self.heartbeat_ms:
                self._send(R_HEARTBEAT, 0, self._next_seq(), 0, now)
        used = self._e_used
        for i in range(_INPUTS):
            if not used[i]:
                continue
            if time.ticks_diff(now, self._e_born[i]) >= _INPUT_TTL_MS:
                used[i] = 0  # §6.3: given up 5 s after the gesture
            elif self.session and self._e_live[i]:
                if time.ticks_diff(now, self._e_sent[i]) >= self._e_rto[i]:
                    rto = self._e_rto[i] * 2
                    self._e_rto[i] = rto if rto < _RTO_MAX_MS else _RTO_MAX_MS
                    self._send_input(i, now, True)
        if self.session and time.ticks_diff(now, self._st_last) >= _STATUS_MIN_MS:
            self._status(now)

    def uptime_ms(self, now):
        d = time.ticks_diff(now, self._uptime_at)
        if d > 0:
            self._uptime = (self._uptime + d) & 0xFFFFFFFF
            self._uptime_at = now
        return self._uptime

    # ------------------------------------------------------------------ §6.3 input events

    def press(self, kind, source, duration_ms, now):
        """A finished gesture (kind 1 short, 2 long, 3 double, 4 touch), sent reliably."""
        free = -1
        oldest = -1
        for i in range(_INPUTS):
            if not self._e_used[i]:
                free = i
                break
            if oldest < 0 or self._e_order[i] < self._e_order[oldest]:
                oldest = i
        i = free if free >= 0 else oldest  # full: the oldest is dropped
        self._e_used[i] = 1
        self._e_kind[i] = kind
        self._e_src[i] = source
        self._e_at[i] = self.uptime_ms(now)
        self._e_dur[i] = duration_ms if duration_ms < 0xFFFF else 0xFFFF
        self._e_born[i] = now
        self._e_live[i] = 0
        self._e_order[i] = self._e_count
        self._e_count += 1
        if self.session:
            self._send_input(i, now)

    def _inputs_in_order(self):
        idx = [i for i in range(_INPUTS) if self._e_used[i]]
        idx.sort(key=lambda i: self._e_order[i])
        return idx

    def _send_input(self, i, now, retx=False):
        if not retx:
            self._e_seq[i] = self._next_seq()
            self._e_rto[i] = _RTO_MS
            self._e_live[i] = 1
        tx = self._tx
        tx[4] = self._e_kind[i]
        tx[5] = self._e_src[i]
        at = self._e_at[i]
        tx[6] = at & 0xFF
        tx[7] = (at >> 8) & 0xFF
        tx[8] = (at >> 16) & 0xFF
        tx[9] = (at >> 24) & 0xFF
        tx[10] = self._e_dur[i] & 0xFF
        tx[11] = self._e_dur[i] >> 8
        self._e_sent[i] = now
        self._send(R_INPUT_EVENT, _ACK_REQ | (_RETX if retx else 0), self._e_seq[i], 8, now)

    def _input_answered(self, seq, now):
        # an ACK settles it; a NACK (BAD_VALUE: a kind the host does not know) drops it (§4.2)
        for i in range(_INPUTS):
            if self._e_used[i] and self._e_live[i] and self._e_seq[i] == seq:
                self._e_used[i] = 0
                self.show.note("ANSWERED", seq)
                return

    # ------------------------------------------------------------------ best effort

    def _status(self, now):
        flags, melt = self.show.status()
        err = self.crc_errors + self.oversize_frames
        err = err if err < 0xFFFF else 0xFFFF
        if flags == self._st_flags and melt == self._st_melt and err == self._st_err:
            return
        self._st_flags, self._st_melt, self._st_err = flags, melt, err
        self._st_last = now
        up = self.uptime_ms(now)
        tx = self._tx
        tx[4] = up & 0xFF
        tx[5] = (up >> 8) & 0xFF
        tx[6] = (up >> 16) & 0xFF
        tx[7] = (up >> 24) & 0xFF
        tx[8] = err & 0xFF
        tx[9] = err >> 8
        tx[10] = flags
        tx[11] = melt
        tx[12] = 0x00  # temp_dc -32768: no sensor
        tx[13] = 0x80
        self._send(R_STATUS, 0, self._next_seq(), 10, time.ticks_ms())

    def log(self, level, text):
        """A LOG line to the host, best effort (dropped without a session)."""
        if not self.session:
            return
        raw = text.encode() if isinstance(text, str) else text
        n = len(raw) if len(raw) < _LOG_MAX else _LOG_MAX
        tx = self._tx
        tx[4] = level
        tx[5 : 5 + n] = raw[:n]
        self._send(R_LOG, 0, self._next_seq(), 1 + n, time.ticks_ms())

    def boot(self, cause, now):
        """Send the one BOOT frame (§5.1); seq 0 at every boot."""
        self.tx_seq = 0
        self._tx[4] = cause
        self._send(R_BOOT, 0, self._next_seq(), 1, now)

    # ------------------------------------------------------------------ sending

    def _next_seq(self):
        s = self.tx_seq
        self.tx_seq = (s + 1) & 0xFFFF
        return s

    def _ack(self, seq, now):
        self._tx[4] = seq & 0xFF
        self._tx[5] = seq >> 8
        self._send(R_ACK, 0, self._next_seq(), 2, now)

    def _nack(self, seq, reason, now):
        self._tx[4] = seq & 0xFF
        self._tx[5] = seq >> 8
        self._tx[6] = reason
        self._send(R_NACK, 0, self._next_seq(), 3, now)

    def _send(self, t, flags, seq, body_n, now):
        tx = self._tx
        tx[0] = t
        tx[1] = flags
        tx[2] = seq & 0xFF
        tx[3] = seq >> 8
        n = 4 + body_n
        c = crc32(self._tx_mv, n)
        tx[n] = c & 0xFF
        tx[n + 1] = (c >> 8) & 0xFF
        tx[n + 2] = (c >> 16) & 0xFF
        tx[n + 3] = (c >> 24) & 0xFF
        w = cobs_frame(tx, n + 4, self._wire)
        self.io.write(self._wire_mv[:w])
        self.frames_out += 1
        self.last_tx = now
