# ADD of a local tar archive: extracted, with the archive's owners and modes.
FROM localhost/bbase:1
ADD arch.tar.gz /add/extracted/
ADD arch.tar.gz /
