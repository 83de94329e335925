FROM localhost/bkbase:1
COPY <<A <<B /many/
a
A
b
B
