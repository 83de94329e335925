FROM localhost/bkbase:1
COPY ["with space.txt", "/with space/"]
