FROM scratch
COPY a.txt /a.txt
