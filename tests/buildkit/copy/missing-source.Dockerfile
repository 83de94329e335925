FROM localhost/bkbase:1
# bkdiff-expect: error
COPY nope.txt /nope
