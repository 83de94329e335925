FROM localhost/bkbase:1
RUN ["/bin/sh", "-c", "echo exec > /exec"]
