FROM localhost/bkbase:1
MAINTAINER Someone <someone@example.com>
