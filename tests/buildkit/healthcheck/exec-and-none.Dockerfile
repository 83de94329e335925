FROM localhost/bkbase:1 AS a
HEALTHCHECK CMD ["/bin/true"]
FROM a
HEALTHCHECK NONE
