FROM localhost/bkbase:1
STOPSIGNAL 9
