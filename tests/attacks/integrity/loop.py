# Run for ever (a cell, or the body of lookup).
while True:
    pass
