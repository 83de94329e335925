FROM localhost/bkbase:1
LABEL a=1 "b c"="d e" multi="line \
continued"
LABEL a=override
