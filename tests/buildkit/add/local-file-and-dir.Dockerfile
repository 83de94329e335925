FROM localhost/bkbase:1
ADD a.txt /added/
ADD dir /added-dir
