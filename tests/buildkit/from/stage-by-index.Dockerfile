FROM localhost/bkbase:1
RUN echo zero > /zero
FROM localhost/bkbase:1
COPY --from=0 /zero /from-zero
