build/obj/providers/http.o: ../../providers/http.c ../../providers/http.h \
  ../../providers/buf.h

../../providers/http.h:

../../providers/buf.h:
