# Skelly figurine firmware: what is wired to which pin of the Raspberry Pi Pico (GPIO numbers,
# "GPn" on the pinout). Set a pin to None for a part that is not fitted: the firmware then
# reports that capability as absent in HELLO_REPLY and refuses its commands with UNSUPPORTED.
# See docs/FIRMWARE.md for the wiring.

# serial line to the Raspberry Pi: "usb" (USB CDC, the Pico's USB cable: /dev/ttyACM0 on the Pi)
# or "uart" (UART0 on GP0 TX / GP1 RX, to the Pi's GPIO14 RX / GPIO15 TX)
SERIAL = "usb"
UART_ID = 0
UART_TX = 0
UART_RX = 1
UART_BAUD = 115200

# WS2812 ("NeoPixel") ring: data in
LED_PIN = 2
LED_COUNT = 12

# hobby servo (the "melt" posture): signal; pulse width for upright (0) and fully slumped (255)
SERVO_PIN = 3
SERVO_MIN_US = 600
SERVO_MAX_US = 2400

# passive buzzer (driven with PWM, volume = duty cycle)
BUZZER_PIN = 4

# push button to GND (internal pull-up)
BUTTON_PIN = 5

# SSD1306 OLED on I2C0
DISPLAY_SDA = 8
DISPLAY_SCL = 9
DISPLAY_ADDR = 0x3C
DISPLAY_W = 128
DISPLAY_H = 64
MAX_TEXT = 80  # bytes of text in the bubble (16 characters x 5 lines)

# hardware watchdog: the board resets if the main loop hangs this long (max 8388 ms; 0 = off)
WATCHDOG_MS = 5000
