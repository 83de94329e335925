# RUN --mount: cache, bind (context and stage), tmpfs; none of them lands in the image.
FROM localhost/bbase:1 AS data
RUN mkdir /data && echo from-stage > /data/x

FROM localhost/bbase:1
RUN --mount=type=cache,target=/var/cache/app echo cached > /var/cache/app/c && mkdir /r && cat /var/cache/app/c > /r/cache
RUN --mount=type=bind,source=a.txt,target=/mnt/a.txt cat /mnt/a.txt > /r/bind-ctx
RUN --mount=type=bind,from=data,source=/data,target=/mnt/data cat /mnt/data/x > /r/bind-stage
RUN --mount=type=tmpfs,target=/scratch echo tmp > /scratch/t && cat /scratch/t > /r/tmpfs
