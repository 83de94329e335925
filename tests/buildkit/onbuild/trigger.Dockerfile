FROM localhost/bkbase:1 AS parent
ONBUILD RUN echo triggered > /t
ONBUILD ENV FROM_TRIGGER=1
FROM parent
RUN cat /t > /seen
