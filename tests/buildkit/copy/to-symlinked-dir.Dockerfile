FROM localhost/bkbase:1
RUN mkdir -p /real/d && ln -s /real /abs-link && ln -s real/d /rel-link
COPY a.txt /abs-link
COPY b.sh /rel-link/
COPY dir /abs-link
COPY conf/one.conf /abs-link/new/one.conf
