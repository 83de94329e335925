FROM localhost/bkbase:1
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && ls /scratch > /ls
