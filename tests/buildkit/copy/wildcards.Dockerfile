FROM localhost/bkbase:1
COPY conf/*.conf /confs/
COPY conf/t?o.* /q/
COPY conf/[ot]*.conf /class/
