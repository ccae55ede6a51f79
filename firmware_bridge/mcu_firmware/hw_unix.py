# Skelly figurine firmware on the MicroPython unix port: the hardware layer for tests and
# benchmarks. The serial line is a tty path (a pty's slave) in termios raw mode, read without
# blocking (VMIN = VTIME = 0) after select.poll. Outputs are recorded as lines on stderr, e.g.
# "APPLY GLOW 255 0 0 128 1000 64 200" for every command executed, "BUZZ 880 128", "DISPLAY 1 hi"
# when they change, and a "SHOWS ..." snapshot on request; the button is driven from a control
# pipe (one command a line):
#   press short|long|double [held_ms]   a gesture, as the debouncer would report it
#   down | up                           the raw button level (goes through debounce/gestures)
#   show                                -> SHOWS leds=r,g,b melt=m face=f text=... buzz=f,v
#   heap                                -> HEAP peak=<gc.mem_alloc high-water> alloc= free=
#   stats                               -> STATS in= out= crc= oversize= garbage= dup= ...
#   quit                                end (also at end of file on the control pipe)
#
#   micropython -X heapsize=48K hw_unix.py --serial /dev/pts/N [--control FD] [--leds 12]
#       [--no-servo] [--no-buzzer] [--no-button] [--no-display] [--max-text 80] [--cause 1]
import gc
import select
import sys
import termios

from skelly_link import (
    T_PLAY_ANIMATION,
    T_SET_BRIGHTNESS,
    T_SET_GLOW,
    T_SET_POSE,
    T_SHOW_TEXT,
    T_SLEEP,
    T_TONE,
)
from skelly_run import Firmware

_NAMES = {
    T_SET_GLOW: "GLOW",
    T_SET_POSE: "POSE",
    T_SHOW_TEXT: "TEXT",
    T_SET_BRIGHTNESS: "BRIGHTNESS",
    T_SLEEP: "SLEEP",
    T_PLAY_ANIMATION: "ANIM",
    T_TONE: "TONE",
}
_KINDS = {"short": 1, "long": 2, "double": 3}


def _out(line):
    sys.stderr.write(line + "\n")


class UnixHw:
    def __init__(self, serial, control=-1, leds=12, servo=True, buzzer=True, button=True,
                 display=True, max_text=80):  # fmt: skip
        self._f = open(serial, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][6] = 0  # VMIN: a read returns what is there, even nothing
        attrs[6][5] = 0  # VTIME
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self._ctl = None
        if control >= 0:
            self._ctl = open(control, "rb")
            self._ctl_fd = control
            self._poll.register(control, select.POLLIN)
        self.led_count = leds
        self.has_servo = servo
        self.has_buzzer = buzzer
        self.has_button = button
        self.has_display = display
        self.display_w = 128
        self.display_h = 64
        self.max_text = max_text
        self.running = True
        self.tx_errors = 0
        self._level = False
        self._leds = (0, 0, 0)
        self._melt = 0
        self._face = 0
        self._text = None
        self._buzz = (0, 0)

    # serial
    def read(self, buf):
        try:
            n = self._f.readinto(buf)
        except OSError:
            return 0
        return n or 0

    def write(self, mv):
        try:
            self._f.write(mv)
        except OSError:
            self.tx_errors += 1  # nobody on the line: the bytes fall on the floor

    def wait(self, ms):
        for _ in self._poll.ipoll(ms):  # ipoll: no allocation per call
            break

    def button(self):
        return self._level

    # outputs
    def leds(self, r, g, b):
        self._leds = (r, g, b)

    def servo(self, melt):
        self._melt = melt

    def display(self, face, text):
        self._face = face
        self._text = text
        _out("DISPLAY %d %s" % (face, "" if text is None else text))

    def buzz(self, freq, volume):
        self._buzz = (freq, volume)
        _out("BUZZ %d %d" % (freq, volume))

    def note(self, what, value):
        _out("%s %s" % (what, value))

    def applied(self, t, b, o, n):
        name = _NAMES[t]
        if t == T_SET_GLOW:
            args = (b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4] | b[o + 5] << 8, b[o + 6],
                    b[o + 7] | b[o + 8] << 8)  # fmt: skip
        elif t == T_SET_POSE:
            args = (b[o], b[o + 1] | b[o + 2] << 8, b[o + 3])
        elif t == T_SHOW_TEXT:
            text = str(bytes(b[o + 4 : o + 4 + b[o + 3]]), "utf-8")
            args = (b[o], b[o + 1] | b[o + 2] << 8, text)
        elif t == T_SET_BRIGHTNESS:
            args = (b[o],)
        elif t == T_SLEEP:
            args = (b[o], b[o + 1] | b[o + 2] << 8)
        elif t == T_PLAY_ANIMATION:
            args = (b[o], b[o + 1], b[o + 2])
        else:
            args = (b[o] | b[o + 1] << 8, b[o + 2] | b[o + 3] << 8, b[o + 4])
        _out("APPLY " + name + " " + " ".join(str(a) for a in args))

    # the test's hand on the figurine
    def poll(self, fw, now):
        ctl = self._ctl
        if ctl is None:
            return
        ready = False
        for obj, _ev in self._poll.ipoll(0):
            if obj == self._ctl_fd:
                ready = True
        if not ready:
            return
        line = ctl.readline()
        if not line:
            self.running = False
            return
        words = line.decode().split()
        if not words:
            return
        cmd = words[0]
        if cmd == "press" and len(words) > 1 and words[1] in _KINDS:
            held = int(words[2]) if len(words) > 2 else 0
            _out("PRESSED %s %d" % (words[1], held))
            fw.link.press(_KINDS[words[1]], 0, held, now)
        elif cmd == "down":
            self._level = True
        elif cmd == "up":
            self._level = False
        elif cmd == "show":
            _out(
                "SHOWS leds=%d,%d,%d melt=%d face=%d text=%s buzz=%d,%d session=%d"
                % (self._leds + (self._melt, self._face, self._text or "") + self._buzz  # noqa: RUF005
                   + (fw.link.session,))
            )  # fmt: skip
        elif cmd == "heap":
            _out("HEAP peak=%d alloc=%d free=%d" % (fw.heap_peak, gc.mem_alloc(), gc.mem_free()))
        elif cmd == "stats":
            k = fw.link
            _out(
                "STATS in=%d out=%d crc=%d oversize=%d garbage=%d dup=%d wrong_dir=%d "
                "errors=%d loops=%d"
                % (k.frames_in, k.frames_out, k.crc_errors, k.oversize_frames, k.garbage_bytes,
                   k.duplicates, k.wrong_direction, fw.errors, fw.loops)
            )  # fmt: skip
        elif cmd == "quit":
            self.running = False
        else:
            _out("UNKNOWN " + cmd)


def main(argv):
    opts = {"serial": None, "control": -1, "leds": 12, "max-text": 80, "cause": 1}
    flags = {"servo": True, "buzzer": True, "button": True, "display": True}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a.startswith("--no-") and a[5:] in flags:
            flags[a[5:]] = False
        elif a.startswith("--") and a[2:] in opts and i + 1 < len(argv):
            i += 1
            opts[a[2:]] = argv[i] if a == "--serial" else int(argv[i])
        else:
            _out("usage: hw_unix.py --serial PATH [--control FD] [--leds N] [--max-text N] "
                 "[--cause N] [--no-servo|--no-buzzer|--no-button|--no-display]")  # fmt: skip
            sys.exit(2)
        i += 1
    if opts["serial"] is None:
        _out("hw_unix.py: --serial PATH is required")
        sys.exit(2)
    hw = UnixHw(opts["serial"], opts["control"], opts["leds"], flags["servo"], flags["buzzer"],
                flags["button"], flags["display"], opts["max-text"])  # fmt: skip
    fw = Firmware(hw)
    _out("BOOT %d" % opts["cause"])
    fw.run(opts["cause"])
    _out("HEAP peak=%d alloc=%d free=%d" % (fw.heap_peak, gc.mem_alloc(), gc.mem_free()))


if __name__ == "__main__":
    main(sys.argv)
