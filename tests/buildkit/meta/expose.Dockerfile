FROM localhost/bkbase:1
EXPOSE 80 443/tcp 53/udp 8000-8002
