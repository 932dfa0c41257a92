"""Device drivers: sans-I/O codecs and thin I/O shells (pyserial, picamera2, python-escpos)."""
