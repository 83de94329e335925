FROM localhost/bkbase:1
RUN touch /etc/passwd
