FROM localhost/bkbase:1
ADD --chown=app:staff a.txt dir /owned/
