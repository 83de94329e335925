# WORKDIR (absolute, relative, with ENV), USER (name and numeric), RUN as that user.
FROM localhost/bbase:1
RUN mkdir -p /etc /tmp && chmod 1777 /tmp && echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group
ENV BASEDIR=/srv
WORKDIR $BASEDIR
WORKDIR app
RUN pwd > /tmp/pwd
COPY a.txt rel.txt
USER 1000:1000
RUN id > /tmp/id-numeric
USER app
RUN id -u > /tmp/id-name && touch /tmp/made-by-app
WORKDIR /created/by/workdir
