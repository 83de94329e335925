FROM localhost/bkbase:1
ADD a.txt /tmp
ADD dir /root
