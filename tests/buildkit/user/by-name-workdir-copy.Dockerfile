FROM localhost/bkbase:1
USER app
WORKDIR /home/app/work
COPY --chown=app a.txt .
RUN id > ids && touch mine
