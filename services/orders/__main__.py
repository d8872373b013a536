from services.orders.service import main

main()
