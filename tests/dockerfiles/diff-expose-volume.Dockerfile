# EXPOSE (default tcp, udp, ranges of forms) and VOLUME (JSON and shell forms).
FROM localhost/bbase:1
ARG PORT=8080
EXPOSE 80 53/udp ${PORT}/tcp
EXPOSE 443/TCP
VOLUME ["/data", "/logs"]
VOLUME /cache /var/lib/x
