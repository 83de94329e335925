# ADD of local files and a directory (behaves like COPY).
FROM localhost/bbase:1
ADD a.txt /add/
ADD a.txt b.sh /add/many/
ADD dir /add/dir
