# Runs first at every reset. Kept minimal and always exits: a fault here would brick the board
# until reflashed, so everything else happens in main.py.
