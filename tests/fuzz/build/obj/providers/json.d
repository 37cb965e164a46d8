build/obj/providers/json.o: ../../providers/json.c ../../providers/json.h

../../providers/json.h:
