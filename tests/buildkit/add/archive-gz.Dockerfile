FROM localhost/bkbase:1
ADD arch.tar.gz /unpacked/
