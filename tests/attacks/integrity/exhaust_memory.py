# Allocate 100 MB after 100 MB until something stops it.
hog = []
while True:
    hog.append(bytearray(10**8))
