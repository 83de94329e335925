FROM scratch
COPY dir/ /
